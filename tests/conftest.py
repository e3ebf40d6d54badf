"""Shared fixtures: a real sidecar over a real channel.

Nothing of borescope's own code is faked; a test that needs a pod uses the
local machine (``local_sidecar``) or the sandbox pod (tests/e2e).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.config import Config  # noqa: E402
from sidecar.deps import Deps  # noqa: E402
from sidecar.server import Sidecar, build  # noqa: E402
from tui.client import Client, Target  # noqa: E402


@dataclass
class Running:
    """A started in-process sidecar and a client connected to it.

    ``client`` carries ``token`` (``client.metadata`` sends it); ``config`` is the
    config the sidecar really runs with (token hash included).
    """

    sidecar: Sidecar
    address: str
    client: Client
    config: Config
    token: str = ""


def new_token() -> tuple[str, str]:
    """A random bearer token and its SHA-256 (what the sidecar is given)."""
    token = secrets.token_urlsafe(24)
    return token, hashlib.sha256(token.encode()).hexdigest()


def start_sidecar(config: Config, *, token: str | None = None) -> Running:
    """Build and start a sidecar on 127.0.0.1:0 and connect a client to it.

    Auth is on, as in production: unless ``config`` already configures auth, a
    random token is made, its hash goes into the config and the client sends it
    (pass ``metadata=client.metadata`` on every call). Pass ``token`` when the
    config holds that token's hash.
    """
    if token is None and not (
        config.token_sha256 or config.token_sha256_file or config.require_client_auth
    ):
        token, digest = new_token()
        if not config.insecure_no_auth:
            config = config.replace(token_sha256=digest)
    sc = build("127.0.0.1:0", config, Deps.from_config(config))
    sc.start()
    address = f"127.0.0.1:{sc.port}"
    client = Client(Target(address, token or ""))
    client.wait_ready(5)
    return Running(sc, address, client, config, token or "")


@pytest.fixture
def app_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real child process standing in for the app (local mode): a sleeper with a child."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess,time; c=subprocess.Popen(['sleep','300']); time.sleep(300)",
        ],
        env={**os.environ, "DB_PASSWORD": "canary-env-7f3a", "PLAIN": "visible"},
    )
    yield p
    # Children first: once the parent is gone, ``pkill -P`` cannot find its sleeper.
    subprocess.run(["pkill", "-KILL", "-P", str(p.pid)], check=False)
    p.kill()
    p.wait()


@pytest.fixture
def local_sidecar(app_process: subprocess.Popen[bytes]) -> Iterator[Running]:
    """An in-process sidecar whose app container is ``app_process``'s tree (local mode)."""
    r = start_sidecar(Config(local_root=app_process.pid))
    yield r
    r.client.close()
    r.sidecar.stop(0)


# --- A tiny real service for interceptor tests (every RPC kind) -------------------

PROBE_SERVICE = "borescope.test.Probe"
PROBE_CANARY = b"probe-content-canary-91c2"


class Probe:
    """Behaviour of the ``borescope.test.Probe`` service, driven by the request bytes.

    Requests are ASCII commands: ``ok``, ``note``, ``notfound``, ``crash``,
    ``block`` (wait until ``release`` is set or the call ends), ``events:N``
    (stream N EventBatch messages with cursors ``c1..cN``; ``events:N:block``
    then blocks). Every answer carries ``PROBE_CANARY`` so tests can prove no
    content reaches the audit record.
    """

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.finished = threading.Semaphore(0)

    def _act(self, cmd: bytes, context: object) -> bytes:
        from agent import errors
        from sidecar import audit

        self.entered.release()
        try:
            if cmd == b"note":
                audit.note(container="app", pid=1, start_ticks=42, path="/etc/resolved")
            elif cmd == b"notfound":
                raise errors.NotFound("no such thing: /nope")
            elif cmd == b"crash":
                raise RuntimeError("secret internal detail")
            elif cmd == b"block":
                while not self.release.wait(0.05):
                    if not context.is_active():  # type: ignore[attr-defined]
                        break
            return PROBE_CANARY + b":" + cmd
        finally:
            self.finished.release()

    def unary(self, request: bytes, context: object) -> bytes:
        return self._act(request, context)

    def server_stream(self, request: bytes, context: object) -> Iterator[object]:
        from protos import events_pb2

        if request.startswith(b"events:"):
            parts = request.split(b":")
            self.entered.release()
            for i in range(1, int(parts[1]) + 1):
                yield events_pb2.EventBatch(  # a message: interceptors see its cursor
                    cursor=f"c{i}", events=[events_pb2.Event(seq=i, message="canary")]
                )
            if len(parts) > 2:
                while not self.release.wait(0.05) and context.is_active():  # type: ignore[attr-defined]
                    pass
            return
        for _ in range(3):
            yield self._act(request, context)

    def client_stream(self, requests: Iterator[bytes], context: object) -> bytes:
        return self._act(b"".join(requests), context)

    def bidi(self, requests: Iterator[bytes], context: object) -> Iterator[bytes]:
        for r in requests:
            yield self._act(r, context)

    def handler(self) -> object:
        """The generic handler to add to a server before it starts."""
        import grpc

        return grpc.method_handlers_generic_handler(
            PROBE_SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(
                    self.server_stream, response_serializer=_to_bytes
                ),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            },
        )


def _to_bytes(message: object) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()  # type: ignore[attr-defined]


def start_probe_sidecar(config: Config, probe: Probe, *, token: str | None = None) -> Running:
    """Like ``start_sidecar`` with the Probe service added before the server starts."""
    if token is None and not (
        config.token_sha256 or config.token_sha256_file or config.require_client_auth
    ):
        token, digest = new_token()
        if not config.insecure_no_auth:
            config = config.replace(token_sha256=digest)
    sc = build("127.0.0.1:0", config, Deps.from_config(config))
    sc.server.add_generic_rpc_handlers((probe.handler(),))  # type: ignore[arg-type]
    sc.start()
    address = f"127.0.0.1:{sc.port}"
    client = Client(Target(address, token or ""))
    client.wait_ready(5)
    return Running(sc, address, client, config, token or "")


def probe_call(running: Running, kind: str, payload: bytes = b"ok", **kw: object) -> object:
    """Call a Probe method of ``kind`` (Unary, ServerStream, ClientStream, Bidi); returns
    the response (list of responses for streams)."""
    ch = running.client.channel
    path = f"/{PROBE_SERVICE}/{kind}"
    kw.setdefault("metadata", running.client.metadata)
    kw.setdefault("timeout", 10)
    if kind == "Unary":
        return ch.unary_unary(path)(payload, **kw)
    if kind == "ServerStream":
        return list(ch.unary_stream(path)(payload, **kw))
    if kind == "ClientStream":
        return ch.stream_unary(path)(iter([payload]), **kw)
    return list(ch.stream_stream(path)(iter([payload]), **kw))


PROBE_KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")
