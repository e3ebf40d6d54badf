"""Map the agent's exceptions to gRPC status codes with a readable message.

A bug (any other exception) becomes INTERNAL with the audit id, and the
traceback goes to the sidecar's log, never to the client.

Messages are made encodable first: a path that is not UTF-8 reaches Python as
lone surrogates (``os.fsdecode``), which gRPC cannot put in a status (the call
would end UNKNOWN); such bytes are shown as ``\\xff`` escapes instead.

Request bytes that do not decode as the method's request message are refused
with INVALID_ARGUMENT by this (innermost) interceptor, so the call is still
authenticated and audited first; gRPC's own deserializer failure would answer
INTERNAL before any interceptor runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
import structlog

from agent import errors
from sidecar.interceptors._wrap import (
    Behavior,
    Continuation,
    Handler,
    InterceptorBase,
    StreamBehavior,
    wrap_handler,
)

log = structlog.get_logger()

EARLIEST_CURSOR_KEY = "borescope-earliest-cursor"

CODES: dict[type[errors.BorescopeError], grpc.StatusCode] = {
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AccessDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotAllowed: grpc.StatusCode.PERMISSION_DENIED,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ProcessRestarted: grpc.StatusCode.FAILED_PRECONDITION,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unsupported: grpc.StatusCode.UNIMPLEMENTED,
    errors.Timeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.CursorLost: grpc.StatusCode.OUT_OF_RANGE,
}


def status_for(exc: errors.BorescopeError) -> grpc.StatusCode:
    """The status code for an agent error (most specific class wins)."""
    for cls in type(exc).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.UNKNOWN


def printable(message: str) -> str:
    """``message`` as valid UTF-8: undecodable path bytes (surrogate escapes) as ``\\xNN``.

    Any other lone surrogate becomes a ``\\udNNN`` escape. gRPC must encode a
    status message as UTF-8; a surrogate would turn the call into UNKNOWN.
    """
    try:
        message.encode("utf-8")
        return message
    except UnicodeEncodeError:
        pass
    try:
        return message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes
        return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    if isinstance(exc, errors.CursorLost):
        context.set_trailing_metadata(((EARLIEST_CURSOR_KEY, exc.earliest),))
    if isinstance(exc, errors.BorescopeError):
        context.abort(status_for(exc), printable(str(exc) or type(exc).__name__))
    if isinstance(exc, PermissionError):
        # A raw EACCES that no reader translated: still the right code.
        context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            printable(f"permission denied: {exc.filename or exc}"),
        )
    log.error("unhandled error in RPC", exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, "internal error in the sidecar; see its log")


def _is_abort(exc: BaseException, context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after setting the code: let it through.
    code = context.code()  # type: ignore[attr-defined]
    return code is not None and code != grpc.StatusCode.OK


class Undecodable:
    """Stands in for a request whose bytes did not decode (see ``lenient``)."""

    def __init__(self, message: str) -> None:
        self.message = message


def lenient(deserializer: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    """``deserializer`` that returns an ``Undecodable`` instead of raising.

    gRPC answers a deserializer's exception with INTERNAL before any interceptor
    runs (no auth, no audit); this way the behaviour refuses it instead.
    """
    cls = getattr(deserializer, "__self__", None)
    what = getattr(getattr(cls, "DESCRIPTOR", None), "full_name", "") or "request message"

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # DecodeError, or anything a broken message raises
            why = printable(str(e)) or type(e).__name__
            return Undecodable(f"{method}: the request bytes are not a valid {what}: {why}")

    return deserialize


def _refuse_undecodable(request: Any, context: grpc.ServicerContext) -> None:
    if isinstance(request, Undecodable):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


def _unary(behavior: Behavior) -> Behavior:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        _refuse_undecodable(request, context)
        try:
            return behavior(request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc)

    return wrapped


def _stream(behavior: StreamBehavior) -> StreamBehavior:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        _refuse_undecodable(request, context)
        try:
            yield from behavior(request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc)

    return wrapped


class ErrorInterceptor(InterceptorBase):
    """Translate agent errors to status codes for every RPC kind."""

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        des = handler.request_deserializer if handler is not None else None
        return wrap_handler(
            handler,
            _unary,
            _stream,
            request_deserializer=lenient(des, handler_call_details.method) if des else None,
        )
