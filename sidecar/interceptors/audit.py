"""One structured audit record per RPC: who, what, on what, outcome, bytes, time.

Records go to an ``AuditSink`` (JSON lines on stdout or ``audit_file``). Request
arguments are summarised with content-like fields dropped and secret-looking
names redacted; nothing the call returns is ever copied in.

Fail closed: before the handler runs, a short ``rpc.begin`` record (audit id,
method, peer) is written; if the sink cannot take it, the call is refused with
UNAVAILABLE and never reaches a servicer. The full ``rpc`` record follows when
the call ends; for unary calls it is written before the response is released,
so a unary answer is only ever delivered if it was audited.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import grpc
import structlog
from google.protobuf.message import Message

from sidecar import audit
from sidecar.audit import AuditSink, AuditSinkError
from sidecar.interceptors._wrap import (
    Behavior,
    Continuation,
    Handler,
    InterceptorBase,
    StreamBehavior,
    wrap_handler,
)

log = structlog.get_logger()

#: Request fields never copied into the audit record (content, not metadata).
CONTENT_FIELDS = frozenset({"data", "body", "content", "raw"})
_SECRETISH = ("token", "password", "secret", "key", "credential")


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def scrub_url(value: str) -> str:
    """A URL without its credentials, query and fragment (they carry secrets).

    ``http://user:pw@db:5432/x?token=s3cret`` -> ``http://db:5432/x?<redacted>``.
    Anything that is not a URL is returned as it is.
    """
    if not _URL.match(value):
        return value
    try:
        parts = urlsplit(value)
        host = parts.netloc.rsplit("@", 1)[-1]
    except ValueError:
        return "<unparseable url>"
    tail = "?<redacted>" if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{parts.path}{tail}"


def summarize(request: Any) -> dict[str, Any]:
    """Scalar request fields worth auditing; no content, secrets redacted."""
    if not isinstance(request, Message):
        return {}
    out: dict[str, Any] = {}
    for fd, value in request.ListFields():
        name = fd.name
        if name in CONTENT_FIELDS:
            continue
        if any(s in name.lower() for s in _SECRETISH):
            out[name] = "<redacted>"
        elif isinstance(value, Message):
            out[name] = summarize(value)
        elif isinstance(value, bytes):
            out[name] = f"<{len(value)} bytes>"
        elif isinstance(value, str):
            text = scrub_url(value)
            out[name] = text[:256] + "…" if len(text) > 256 else text
        elif hasattr(value, "__len__"):
            out[name] = [scrub_url(str(v))[:64] for v in list(value)[:16]]
        else:
            out[name] = value
    return out


class _Call:
    """The bookkeeping of one call, finished exactly once."""

    def __init__(
        self, sink: AuditSink, method: str, context: grpc.ServicerContext, request: Any
    ) -> None:
        self.sink = sink
        self.method = method
        self.context = context
        self.audit_id = uuid.uuid4().hex[:16]
        self.start = time.monotonic()
        self.bytes = 0
        self.messages = 0
        self.args = summarize(request)
        self.obj = audit.begin()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            rpc=method, peer=context.peer(), audit_id=self.audit_id
        )
        # Already sent by a servicer? Then the id is in the log only.
        with contextlib.suppress(ValueError):
            context.send_initial_metadata((("borescope-audit-id", self.audit_id),))

    def begin(self) -> None:
        """Write the intent record; refuse the call if the sink cannot take it."""
        try:
            self.sink.write(
                {
                    "event": "rpc.begin",
                    "audit_id": self.audit_id,
                    "method": self.method,
                    "peer": self.context.peer(),
                }
            )
        except AuditSinkError as e:
            _refuse(self.context, e)

    def sent(self, message: Any) -> None:
        self.messages += 1
        if isinstance(message, Message):
            self.bytes += message.ByteSize()
        elif isinstance(message, bytes):  # generic handlers without a serializer
            self.bytes += len(message)

    def finish(self, exc: BaseException | None) -> None:
        """Write the call's record.

        Raises:
            AuditSinkError: the sink failed (the caller decides what that means).
        """
        code = self.context.code()  # type: ignore[attr-defined]
        if code is None:
            if exc is None and not self.context.is_active():
                # The handler returned, but the client had already gone or timed out.
                code = (
                    grpc.StatusCode.DEADLINE_EXCEEDED
                    if self.context.time_remaining() <= 0
                    else grpc.StatusCode.CANCELLED
                )
            elif exc is None:
                code = grpc.StatusCode.OK
            elif isinstance(exc, GeneratorExit):
                code = grpc.StatusCode.CANCELLED
            else:
                code = grpc.StatusCode.UNKNOWN
        details = self.context.details() if exc is not None else None  # type: ignore[attr-defined]
        self.sink.write(
            {
                "event": "rpc",
                "audit_id": self.audit_id,
                "method": self.method,
                "peer": self.context.peer(),
                "identity": audit.identity(),
                "args": self.args,
                "object": dict(self.obj),
                "code": code.name,
                "details": details.decode() if isinstance(details, bytes) else details,
                "bytes": self.bytes,
                "messages": self.messages,
                "duration_ms": round((time.monotonic() - self.start) * 1000, 3),
            }
        )


def _refuse(context: grpc.ServicerContext, err: AuditSinkError) -> None:
    log.error("audit sink failed; refusing the call", error=str(err))
    context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"the sidecar cannot write its audit record ({err.strerror}); it refuses requests "
        "until the audit sink works again (fail closed; see audit_file)",
    )


def _finish_quietly(call: _Call, exc: BaseException) -> None:
    """Record a failed call; a sink failure here must not mask the call's own error."""
    try:
        call.finish(exc)
    except AuditSinkError as e:
        log.error("audit sink failed", error=str(e), audit_id=call.audit_id)


HEALTH_PREFIX = "/grpc.health.v1.Health/"


class AuditInterceptor(InterceptorBase):
    """Emit one audit record per RPC, for every RPC kind; refuse calls it cannot audit.

    Health checks are not audited unless ``audit_health``: they carry no identity
    and return no data, and the TUI's and kubelet's periodic checks would bury the
    real records. They are not refused either when the sink fails: health itself
    reports the failure (NOT_SERVING) so that the container gets restarted.

    Args:
        sink: where records go.
        audit_health: audit grpc.health.v1 calls too.
    """

    def __init__(self, sink: AuditSink | None = None, *, audit_health: bool = False) -> None:
        self.sink = sink or AuditSink()
        self.audit_health = audit_health

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        sink = self.sink
        if method.startswith(HEALTH_PREFIX) and not self.audit_health:
            return continuation(handler_call_details)

        def unary(behavior: Behavior) -> Behavior:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                call = _Call(sink, method, context, request)
                call.begin()
                try:
                    response = behavior(request, context)
                except BaseException as exc:
                    _finish_quietly(call, exc)
                    raise
                call.sent(response)
                try:
                    call.finish(None)
                except AuditSinkError as e:
                    _refuse(context, e)  # the answer is withheld: it was not audited
                return response

            return wrapped

        def stream(behavior: StreamBehavior) -> StreamBehavior:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                call = _Call(sink, method, context, request)
                call.begin()
                try:
                    for response in behavior(request, context):
                        call.sent(response)
                        yield response
                except BaseException as exc:
                    _finish_quietly(call, exc)
                    raise
                try:
                    call.finish(None)
                except AuditSinkError as e:
                    _refuse(context, e)

            return wrapped

        return wrap_handler(continuation(handler_call_details), unary, stream)
