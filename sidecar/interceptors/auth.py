"""Bearer-token (and client-certificate) authentication for every RPC but health.

The sidecar holds only SHA-256 hashes of the accepted tokens; the raw token
stays with the person's client. A presented token is hashed and compared
against every stored hash with ``hmac.compare_digest`` (constant time, and
no early exit across hashes, so timing reveals neither a prefix nor which
hash matched).

Deny by default: the check sits in front of every method, including ones the
server does not implement, so an unauthenticated caller cannot even learn
which methods exist. Only ``grpc.health.v1.Health`` is open (it reports
SERVING/NOT_SERVING and nothing else).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from sidecar import audit
from sidecar.interceptors._wrap import (
    Behavior,
    Continuation,
    Handler,
    InterceptorBase,
    StreamBehavior,
    wrap_handler,
)

OPEN_PREFIX = "/grpc.health.v1.Health/"
_BEARER = "bearer "


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a token, the form the sidecar is configured with."""
    import hashlib  # lazy: OpenSSL's digests (~0.6 MiB RSS) load with the first call to check

    return hashlib.sha256(token.encode()).hexdigest()


def token_id(digest: str) -> str:
    """A short, non-secret name for a token in audit records."""
    return f"token:{digest[:8]}"


def certificate_subject(context: grpc.ServicerContext) -> str:
    """The verified client certificate's subject (or CN), "" without mTLS."""
    try:
        auth = context.auth_context()
    except (AttributeError, ValueError):
        return ""
    for key in ("x509_subject", "x509_common_name"):
        values: Any = auth.get(key) or ()
        if values:
            return bytes(values[0]).decode(errors="replace")
    return ""


class AuthInterceptor(InterceptorBase):
    """Require ``authorization: Bearer <token>`` (or a verified client certificate).

    Args:
        hashes: accepted token hashes (hex). Empty with ``cert_ok`` = mTLS only;
            empty without it = no authentication at all (``insecure_no_auth``).
        cert_ok: a client certificate verified by the TLS layer authenticates
            the caller when no token hash is configured.
        enabled: False only for ``insecure_no_auth``.
    """

    def __init__(self, hashes: Iterable[str], *, cert_ok: bool = False, enabled: bool = True):
        self._hashes: Sequence[bytes] = tuple(h.lower().encode() for h in hashes)
        self._cert_ok = cert_ok
        self._enabled = enabled

    def check(self, metadata: Sequence[tuple[str, Any]] | None) -> tuple[str, str]:
        """Decide on a call's metadata: (identity, "") if allowed, ("", reason) if not."""
        header = ""
        for key, value in metadata or ():
            if key == "authorization":
                header = value.decode() if isinstance(value, bytes) else str(value)
                break
        if not header:
            return "", "missing authorization metadata (expected 'authorization: Bearer <token>')"
        if header[: len(_BEARER)].lower() != _BEARER:
            return "", "authorization metadata is not a Bearer token"
        import hmac  # lazy, as hashlib in token_sha256

        presented = token_sha256(header[len(_BEARER) :].strip()).encode()
        match = b""
        for h in self._hashes:  # no early exit: constant work whichever hash matches
            if hmac.compare_digest(presented, h):
                match = h
        if not match:
            return "", "the bearer token is not valid for this sidecar"
        return token_id(match.decode()), ""

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if method.startswith(OPEN_PREFIX) or not self._enabled:
            return handler
        metadata = handler_call_details.invocation_metadata
        if handler is None:
            # An unknown method: still UNAUTHENTICATED for an unauthenticated caller
            # (never tell a stranger what exists); authenticated callers get UNIMPLEMENTED.
            _identity, reason = self._decide(metadata, None)
            if reason:
                return grpc.unary_unary_rpc_method_handler(_deny_unary(reason))
            return None

        def unary(behavior: Behavior) -> Behavior:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                self._admit(metadata, context)
                return behavior(request, context)

            return wrapped

        def stream(behavior: StreamBehavior) -> StreamBehavior:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                self._admit(metadata, context)
                yield from behavior(request, context)

            return wrapped

        return wrap_handler(handler, unary, stream)

    def _decide(
        self, metadata: Sequence[tuple[str, Any]] | None, context: grpc.ServicerContext | None
    ) -> tuple[str, str]:
        if self._hashes:
            identity, reason = self.check(metadata)
            subject = certificate_subject(context) if context is not None else ""
            if identity and subject:
                identity = f"{identity} cert:{subject}"
            return identity, reason
        if self._cert_ok and context is not None:
            subject = certificate_subject(context)
            if subject:
                return f"cert:{subject}", ""
        return "", "a verified client certificate is required"

    def _admit(
        self, metadata: Sequence[tuple[str, Any]] | None, context: grpc.ServicerContext
    ) -> None:
        """Set the caller's identity, or abort the call with UNAUTHENTICATED."""
        identity, reason = self._decide(metadata, context)
        if reason:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
        audit.set_identity(identity)


def _deny_unary(reason: str) -> Behavior:
    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    return deny
