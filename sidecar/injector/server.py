"""The webhook's HTTPS server: POST /mutate (AdmissionReview v1), GET /healthz.

stdlib ``http.server`` + ``ssl``. The certificate files are re-read when
they change (cert-manager renews them in place), so a renewal never needs a
restart. Requests are bounded in size; a malformed review gets a 400 and a
log line, never a traceback.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from sidecar.injector.mutate import Settings, review

log = structlog.get_logger("borescope.injector")

MAX_BODY = 8 << 20  # the API server sends at most ~3 MiB objects
CERT_CHECK_S = 10.0


class _Certs:
    """The TLS context, rebuilt when the certificate files change on disk."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.on_reload: Callable[[], None] | None = None
        """Called after new files were loaded (the caBundle keeper checks again)."""
        self._stamp: tuple[float, float] = (0.0, 0.0)
        self._checked = 0.0
        self.check_interval_s = CERT_CHECK_S
        """How often (at most) an accepted connection looks at the files' mtimes."""
        self.context = self._load()

    def _load(self) -> ssl.SSLContext:
        stamp = (os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        self._stamp = stamp
        return ctx

    def current(self) -> ssl.SSLContext:
        """The context for the next connection, reloaded if the files changed."""
        now = time.monotonic()
        if now - self._checked < self.check_interval_s:
            return self.context
        self._checked = now
        try:
            stamp = (os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime)
            if stamp != self._stamp:
                self.context = self._load()
                log.info("certificate reloaded", cert=self.cert)
                if self.on_reload is not None:
                    self.on_reload()
        except (OSError, ssl.SSLError) as e:
            # Mid-rotation (one file written, not the other): keep the old pair.
            log.warning("certificate reload failed; keeping the current one", error=str(e))
        return self.context


class _Handler(BaseHTTPRequestHandler):
    server: InjectorServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds per socket operation: a stalled client is dropped

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one structured line per review instead

    def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/readyz"):
            self._reply(200, b"ok\n", "text/plain")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/mutate":
            self._reply(404, b"not found\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._reply(413 if length > MAX_BODY else 400, b'{"error":"bad Content-Length"}')
            self.close_connection = True
            return
        started = time.monotonic()
        try:
            doc = json.loads(self.rfile.read(length))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            out = review(doc, self.server.settings)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            log.warning("bad admission review", error=str(e), peer=self.client_address[0])
            self._reply(400, json.dumps({"error": str(e)}).encode())
            return
        resp = out["response"]
        req = doc.get("request") or {}
        log.info(
            "review",
            uid=req.get("uid"),
            namespace=req.get("namespace"),
            name=req.get("name")
            or (req.get("object") or {}).get("metadata", {}).get("generateName"),
            patched="patch" in resp,
            warnings=len(resp.get("warnings") or []),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        self._reply(200, json.dumps(out).encode())


class InjectorServer(ThreadingHTTPServer):
    """The webhook server; ``port`` is the bound port (bind 0 in tests)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: Settings, cert: str, key: str) -> None:
        self.settings = settings
        self.certs = _Certs(cert, key)
        super().__init__(address, _Handler)
        self.port: int = self.server_address[1]

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # The handshake happens on the first read, in the handler thread (with
        # the handler's timeout), so one slow client cannot stall the accept loop.
        ctx = self.certs.current()
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A failed TLS handshake or a reset connection: a log line, no traceback.
        log.warning("connection error", peer=client_address[0])
