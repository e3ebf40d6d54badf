"""Request limits: calls in flight, default deadlines, stream age, shutdown.

* At most ``max_concurrent_rpcs`` calls run at once (health excluded, it has its
  own reserve of threads); the next one is refused with RESOURCE_EXHAUSTED and a
  message naming the switch, instead of grpc's bare code or a silent queue.
* A unary call that came without a deadline runs on a helper thread and is
  answered DEADLINE_EXCEEDED after ``default_deadline_s``: the client never
  hangs. Python cannot stop a thread, so the work itself keeps its in-flight
  slot until it really returns; stuck work shows up as lost capacity, bounded
  by the same limit, never as unbounded threads.
* A stream older than ``max_stream_age_s`` ends after the message it just sent
  with UNAVAILABLE and its resume cursor(s) in the trailing metadata key
  ``borescope-cursor`` (form below), so the client resumes and loses nothing.
  A quiet stream ends too: the servicer's ``context.is_active()`` turns False. Once the sidecar is stopping, a servicer that
  honours ``deps.stopping`` ends its own stream (with its own trailer); one
  that keeps sending is ended the same way after ``STOP_GRACE_S``.

The trailer has the same form the servicers use: for multi-source streams
(messages with a ``cursors`` map, e.g. LogBatch) a JSON object source id ->
cursor; for single-cursor streams (a ``cursor`` field, e.g. EventBatch,
FollowFileResponse) the cursor string itself. The cursors come from, in
order: a provider the servicer registered with ``set_cursor_provider`` (exact:
it knows quiet sources too), else the request's ``cursors``/``cursor``
updated by every message's ``cursors`` map or ``cursor`` field.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import Message

from sidecar.interceptors._wrap import (
    Behavior,
    Continuation,
    Handler,
    InterceptorBase,
    StreamBehavior,
    wrap_handler,
)

CURSOR_KEY = "borescope-cursor"
EXEMPT_PREFIX = "/grpc.health.v1.Health/"
#: A call whose deadline is further away than this came without one.
_NO_DEADLINE_S = 10 * 365 * 86400.0
#: Once stopping, how long a stream may keep sending before it is ended for the servicer.
STOP_GRACE_S = 1.0

_provider: contextvars.ContextVar[Callable[[], dict[str, str]] | None] = contextvars.ContextVar(
    "borescope_cursor_provider", default=None
)


def set_cursor_provider(provider: Callable[[], dict[str, str]]) -> None:
    """Register, from inside a streaming servicer, how to get the stream's exact resume
    cursors (source id -> cursor) should the sidecar end the stream itself."""
    _provider.set(provider)


#: Key under which a single-cursor stream's cursor is tracked (never sent as JSON).
SINGLE = ""


def track_cursor(cursors: dict[str, str], message: Any) -> None:
    """Fold a streamed message's (or request's) resume point(s) into ``cursors``.

    A ``cursors`` map (per source) is merged; a single ``cursor`` field is kept
    under the key ``SINGLE``.
    """
    if not isinstance(message, Message):
        return
    fields = message.DESCRIPTOR.fields_by_name
    if "cursors" in fields:
        cursors.update(dict(message.cursors))  # type: ignore[attr-defined]
    elif "cursor" in fields and message.cursor:  # type: ignore[attr-defined]
        cursors[SINGLE] = message.cursor  # type: ignore[attr-defined]


def trailer_value(cursors: dict[str, str]) -> str:
    """The ``borescope-cursor`` value: the bare cursor, or JSON source id -> cursor."""
    if set(cursors) == {SINGLE}:
        return cursors[SINGLE]
    return json.dumps({k: v for k, v in cursors.items() if k != SINGLE})


class LimitsInterceptor(InterceptorBase):
    """Bound calls in flight, unary call duration and stream age; end streams on stop.

    Args:
        max_concurrent: calls allowed in flight at once.
        default_deadline_s: cap for unary calls that came without a deadline.
        max_stream_age_s: streams end (with their cursor) after this long.
        stopping: set at graceful shutdown; streams end after their next message.
    """

    def __init__(
        self,
        max_concurrent: int,
        default_deadline_s: float,
        max_stream_age_s: float,
        stopping: threading.Event,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.default_deadline_s = default_deadline_s
        self.max_stream_age_s = max_stream_age_s
        self.stopping = stopping
        self._lock = threading.Lock()
        self._in_flight = 0
        # Sized to the limit: every offloaded call holds a slot, so it never queues.
        self._pool = futures.ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="rpc-unary"
        )

    @property
    def in_flight(self) -> int:
        """Calls (or their abandoned work) holding a slot right now."""
        return self._in_flight

    def close(self) -> None:
        """Stop the helper pool (abandoned work finishes in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _acquire(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            if self._in_flight < self.max_concurrent:
                self._in_flight += 1
                return
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the sidecar is at its limit of {self.max_concurrent} calls in flight "
            "(config max_concurrent_rpcs); close a stream or retry shortly",
        )

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler_call_details.method.startswith(EXEMPT_PREFIX):
            return handler
        return wrap_handler(handler, self._unary, self._stream)

    def _unary(self, behavior: Behavior) -> Behavior:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            self._acquire(context)
            if context.time_remaining() < _NO_DEADLINE_S:
                try:
                    return behavior(request, context)
                finally:
                    self._release()
            return self._run_with_default_deadline(behavior, request, context)

        return wrapped

    def _run_with_default_deadline(
        self, behavior: Behavior, request: Any, context: grpc.ServicerContext
    ) -> Any:
        ctx = contextvars.copy_context()  # audit object, identity, log context
        try:
            future = self._pool.submit(ctx.run, behavior, request, context)
        except RuntimeError:  # pool shut down: the sidecar is stopping
            self._release()
            context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is shutting down")
        future.add_done_callback(lambda _f: self._release())
        try:
            return future.result(timeout=self.default_deadline_s)
        except futures.TimeoutError:
            context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the call ran longer than {self.default_deadline_s:g}s and was given no "
                "deadline (config default_deadline_s); pass a deadline or narrow the request",
            )

    def _stream(self, behavior: StreamBehavior) -> StreamBehavior:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if self.stopping.is_set():
                context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is shutting down")
            self._acquire(context)
            _provider.set(None)  # pool threads keep contextvars between calls
            try:
                clock = _StreamClock(self.max_stream_age_s, self.stopping)
                inner = behavior(request, _StreamContext(context, clock))  # type: ignore[arg-type]
                yield from _guarded(inner, request, context, clock)
            finally:
                self._release()

        return wrapped


class _StreamClock:
    """When a stream must end: past its maximum age, or a while after stopping began."""

    def __init__(self, max_age_s: float, stopping: threading.Event) -> None:
        self.start = time.monotonic()
        self.max_age_s = max_age_s
        self.stopping = stopping
        self._stop_seen = 0.0

    def reason(self) -> str:
        """Why the stream must end now, or "" while it may go on."""
        now = time.monotonic()
        if self.stopping.is_set():
            self._stop_seen = self._stop_seen or now
            if now - self._stop_seen >= STOP_GRACE_S:
                return "the sidecar is shutting down"
            # Within the grace the servicer ends itself, with its own exact trailer.
        if now - self.start > self.max_age_s:
            return (
                f"the stream reached its maximum age of {self.max_age_s:g}s "
                "(config max_stream_age_s)"
            )
        return ""


class _StreamContext:
    """The servicer's context, whose ``is_active()`` turns False when the stream must end.

    Servicer loops already wait on ``context.is_active()``; this way a quiet stream
    (nothing to send for an hour) also ends at its maximum age, not only a busy one.
    """

    def __init__(self, context: grpc.ServicerContext, clock: _StreamClock) -> None:
        self._context = context
        self._clock = clock

    def is_active(self) -> bool:
        return bool(self._context.is_active()) and not self._clock.reason()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _guarded(
    responses: Iterator[Any], request: Any, context: grpc.ServicerContext, clock: _StreamClock
) -> Iterator[Any]:
    """Pass messages on; end the stream with its cursors once ``clock`` says so."""
    cursors: dict[str, str] = {}
    track_cursor(cursors, request)  # the client's own resume point(s)
    reason = ""
    for message in responses:
        track_cursor(cursors, message)
        yield message
        reason = clock.reason()
        if reason:
            break
    else:
        # The servicer returned: by itself (done) or because is_active() turned False.
        reason = clock.reason() if context.is_active() else ""
        if not reason:
            return
    provider = _provider.get()
    if provider is not None:
        cursors = dict(provider())
    close = getattr(responses, "close", None)
    if callable(close):
        close()
    if cursors:
        context.set_trailing_metadata(((CURSOR_KEY, trailer_value(cursors)),))
    context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"{reason}; resume with the cursor in trailer {CURSOR_KEY}",
    )
