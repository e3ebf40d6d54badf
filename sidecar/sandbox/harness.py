"""What both sandbox modes share: the work dir, the token, the app's and sidecar's I/O.

``Sandbox`` is the object tests and ``python -m sidecar.sandbox`` hold. The two
modes (``PodSandbox`` with namespaces and a chroot, ``LocalSandbox`` with plain
child processes) fill in how processes start. Everything the sandbox makes
lives under one unique work dir (``/tmp/borescope-sandbox-XXXX``) and is
removed by ``close()``, which is idempotent and safe after a failed start.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from sidecar.sandbox import cri, stale
from sidecar.sandbox.restart import RestartPolicy

CANARY = "canary-sandbox-5e1f"
"""The app's DB_PASSWORD: tests check it is redacted unless reveal_secrets is on."""
READY_TIMEOUT_S = 40.0  # generous: a loaded 2-core CI box starts Python slowly
STOP_TIMEOUT_S = 5.0
SIDECAR_LOG = "sidecar.log"
STDIO_LOG = "app-stdio.log"
TOKEN_HASH_FILE = "token.sha256"  # noqa: S105 - a file name, not a secret


class SandboxError(RuntimeError):
    """The sandbox could not start; the message says what failed and what to check."""


def demo_app_source() -> str:
    """Host path of the demo app's code."""
    return str(Path(__file__).with_name("demo_app.py"))


def hash_token(token: str) -> str:
    """The hex SHA-256 the sidecar is given instead of the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class Sandbox:
    """A running demo app plus a sidecar watching it, reachable at ``address``.

    Attributes:
        mode: "pod" (namespaces, chroot) or "local" (plain child processes).
        address: HOST:PORT of the sidecar's gRPC server, reachable from the host.
        token: the bearer token clients send (the sidecar holds only its hash).
        workdir: the one directory holding everything the sandbox made.
        app_root: host path of the app's root ("/" in local mode).
        log_file: the app's JSON log, as a path inside ``app_root``.
        stdio_log: host path of the app's stdout/stderr in CRI format.
        app_uid: the uid the app runs as.
        http_port: the app's HTTP port (inside the pod's network namespace).
        netns: the pod's network namespace path for ``nsenter --net=`` ("" locally).
        canary: the secret in the app's environment (DB_PASSWORD).
        restarts: times the app was restarted (by ``restart_app`` or after it exited).
        last_exit: the exit status of the last app that ended (negative: signal).
        notice: told one line about events a person should know (app crashed).
        log_max_bytes: the app renames its log to ``<log>.1`` past this size.
    """

    mode = "base"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = 1.0,
        settings: Sequence[str] = (),
        notice: Callable[[str], None] | None = None,
        log_max_bytes: int = 5 << 20,
    ) -> None:
        self.host = host
        self.log_max_bytes = log_max_bytes
        self.extra_settings = tuple(settings)
        self.notice = notice
        self.restarts = 0
        self.last_exit: int | None = None
        self.port = port
        self.interval = interval
        stale.sweep()
        self.workdir = tempfile.mkdtemp(prefix=stale.PREFIX)
        stale.mark_owner(self.workdir)
        # Traverse, not read, for others: the app user must reach its root below.
        os.chmod(self.workdir, 0o711)  # noqa: S103
        self.token = secrets.token_urlsafe(24)
        self._write_token_hash()
        self.address = ""
        self.app_root = ""
        self.log_file = ""
        self.stdio_log = os.path.join(self.workdir, STDIO_LOG)
        self.app_uid = os.getuid()
        self.http_port = 0
        self.netns = ""
        self.canary = CANARY
        self._procs: list[subprocess.Popen[bytes]] = []
        self._app: subprocess.Popen[bytes] | None = None
        self._app_ready = threading.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._cri = cri.CriWriter(self.stdio_log)
        self._sidecar: subprocess.Popen[bytes] | None = None
        self._sidecar_log = os.path.join(self.workdir, SIDECAR_LOG)
        self._closed = False
        self._lock = threading.Lock()
        self._app_lock = threading.RLock()  # one app (re)start at a time
        self._closing = threading.Event()
        self._supervisor: RestartPolicy | None = None

    # -- what subclasses provide ------------------------------------------------
    def start(self) -> Sandbox:
        """Start everything; on failure everything made so far is removed."""
        raise NotImplementedError

    @property
    def app_host_pid(self) -> int:
        """The app's pid as the host sees it."""
        raise NotImplementedError

    @property
    def app_pid(self) -> int:
        """The app's pid as the sidecar sees it (the pod's PID namespace)."""
        raise NotImplementedError

    @property
    def sidecar_host_pid(self) -> int:
        """The sidecar's pid as the host sees it."""
        raise NotImplementedError

    @property
    def sidecar_pid(self) -> int:
        """The sidecar's pid as it sees itself (the pod's PID namespace)."""
        raise NotImplementedError

    def _restart(self) -> None:
        """Stop the app if it runs and start a new one (caller holds ``_app_lock``)."""
        raise NotImplementedError

    def restart_app(self) -> int:
        """Stop the app (SIGTERM) and start it again; returns the new ``app_pid``.

        Raises:
            SandboxError: the sandbox is closing, or the new app did not start.
        """
        with self._app_lock:
            if self._closing.is_set():
                raise SandboxError("the sandbox is closing")
            self._restart()
            self.restarts += 1
            return self.app_pid

    def _on_app_exit(self) -> None:
        """The app's main process ended: end the rest of its container (mode-specific)."""

    def _supervise_app(self) -> None:
        """Start the restart policy; called once ``start()`` has succeeded."""
        self._supervisor = RestartPolicy(
            current=lambda: self._app,
            restart=self._restart_counted,
            on_exit=self._app_exited,
            say=self._say,
            lock=self._app_lock,
            closing=self._closing,
        )
        self._supervisor.start()

    def _restart_counted(self) -> None:
        self._restart()
        self.restarts += 1

    def _app_exited(self, status: int) -> None:
        self.last_exit = status
        self._on_app_exit()

    def _say(self, text: str) -> None:
        if self.notice is not None:
            self.notice(text)

    # -- shared machinery ---------------------------------------------------------
    @property
    def sidecar_log(self) -> str:
        """Host path of the sidecar's own stdout/stderr (structlog JSON)."""
        return self._sidecar_log

    @property
    def app_log_host_path(self) -> str:
        """Host path of the app's JSON log file."""
        return os.path.join(self.app_root, self.log_file.lstrip("/"))

    @property
    def token_hash_file(self) -> str:
        """The token's SHA-256 in a 0600 file (a mounted Secret's stand-in): not in argv,
        where every local user's ps would show it."""
        return os.path.join(self.workdir, TOKEN_HASH_FILE)

    def _write_token_hash(self, owner: int | None = None) -> None:
        fd = os.open(self.token_hash_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(hash_token(self.token) + "\n")
        if owner is not None:
            os.chown(self.token_hash_file, owner, -1)

    def sidecar_settings(self) -> list[str]:
        """``--set`` pairs every sidecar of the sandbox gets."""
        return [
            f"stdio_logs={self.stdio_log}",
            "reflection=true",
            f"token_sha256_file={self.token_hash_file}",
            "pod_name=demo-app",
            "namespace=sandbox",
            f"node_name={os.uname().nodename}",
            *self.extra_settings,
        ]

    def _spawn_app(
        self, argv: list[str], env: dict[str, str], executable: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the app with stdout/stderr captured in CRI format."""
        self._app_ready.clear()
        p = subprocess.Popen(
            argv,
            executable=executable,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
        )
        self._procs.append(p)
        assert p.stdout is not None and p.stderr is not None
        cri.pump(p.stdout, "stdout", self._cri, self._on_app_line)
        cri.pump(p.stderr, "stderr", self._cri, self._on_app_err)
        self._app = p
        return p

    def _on_app_line(self, line: bytes) -> None:
        if self._app_ready.is_set() or b'"serving"' not in line:
            return
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("msg") == "serving":
                self.http_port = int(record["port"])
                self._app_ready.set()

    def _on_app_err(self, line: bytes) -> None:
        self._stderr_tail.append(line.decode("utf-8", "replace"))

    def _wait_app(self, p: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._app_ready.wait(0.05):
            if p.poll() is not None or time.monotonic() > deadline:
                tail = " | ".join(list(self._stderr_tail)[-5:]) or "no output"
                raise SandboxError(f"the demo app did not start (exit {p.poll()}): {tail}")

    def _spawn_sidecar(self, argv: list[str], executable: str | None = None) -> str:
        """Start the sidecar; return the address from its ``listening on`` line."""
        log = open(self._sidecar_log, "ab")  # noqa: SIM115 - handed to the child and a thread
        p = subprocess.Popen(
            argv,
            executable=executable,
            env=base_env(),
            cwd="/",  # a container's working directory, not the developer's
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        self._procs.append(p)
        self._sidecar = p
        assert p.stdout is not None
        found: list[str] = []
        ready = threading.Event()

        def copy() -> None:
            assert p.stdout is not None
            with p.stdout, log:
                for line in p.stdout:
                    log.write(line)
                    log.flush()
                    if not found and line.startswith(b"listening on "):
                        found.append(line.decode().split()[-1])
                        ready.set()
            ready.set()

        threading.Thread(target=copy, name="sidecar-log", daemon=True).start()
        if not ready.wait(READY_TIMEOUT_S) or not found:
            raise SandboxError(
                # Quoted, not pointed at: the log goes with the work dir on close().
                f"the sidecar did not start (exit {p.poll()}): {_tail(self._sidecar_log)}"
            )
        return found[0]

    def _stop_proc(self, p: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        try:
            p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(STOP_TIMEOUT_S)

    def _teardown(self) -> None:
        """Mode-specific part of close(): stop processes, namespaces, forwarders."""
        for p in reversed(self._procs):
            self._stop_proc(p)

    def close(self) -> None:
        """Stop every process and remove every namespace, mount and file made."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.join(READY_TIMEOUT_S + STOP_TIMEOUT_S)
        try:
            self._teardown()
        finally:
            for p in self._procs:
                if p.poll() is None:
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(STOP_TIMEOUT_S)
            self._cri.close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _tail(path: str, n: int = 3) -> str:
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except FileNotFoundError:
        return "no log"
    return " | ".join(lines[-n:]) or "no output"


def base_env() -> dict[str, str]:
    """The environment of the pod's own processes (pause, sidecar): what a runtime gives.

    Not the harness's: a developer's shell variables (and secrets) have no
    place in the demo pod. PYTHONPATH names borescope's source so ``-m
    sidecar`` works from ``/`` even without an install.
    """
    return {
        "PATH": os.environ.get(
            "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "HOSTNAME": "demo-app",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


def python() -> str:
    """The interpreter running borescope (a venv's, so the sidecar finds its packages)."""
    return sys.executable
