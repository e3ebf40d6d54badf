"""Map the agent's exceptions to gRPC status codes with a readable message.

A bug (any other exception) becomes INTERNAL with the audit id, and the
traceback goes to the sidecar's log, never to the client.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    if isinstance(exc, errors.CursorLost):
        context.set_trailing_metadata(((EARLIEST_CURSOR_KEY, exc.earliest),))
    if isinstance(exc, errors.BorescopeError):
        context.abort(status_for(exc), str(exc) or type(exc).__name__)
    if isinstance(exc, PermissionError):
        # A raw EACCES that no reader translated: still the right code.
        context.abort(
            grpc.StatusCode.PERMISSION_DENIED, f"permission denied: {exc.filename or exc}"
        )
    log.error("unhandled error in RPC", exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, "internal error in the sidecar; see its log")


def _is_abort(exc: BaseException, context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after setting the code: let it through.
    code = context.code()  # type: ignore[attr-defined]
    return code is not None and code != grpc.StatusCode.OK


def _unary(behavior: Behavior) -> Behavior:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc)

    return wrapped


def _stream(behavior: StreamBehavior) -> StreamBehavior:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
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
        return wrap_handler(continuation(handler_call_details), _unary, _stream)
