"""Local mode (no root): the demo app as a plain child process, no namespaces.

The sidecar runs with ``local_root=<app pid>``, so the agent treats the app's
process tree as the app container even though it shares the host's mount
namespace. Nothing is isolated: the app's "root" is the host's ``/``. A
restarted app gets a new pid the sidecar was not told about, so a restart also
restarts the sidecar, on the same port.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from sidecar.sandbox import rootfs
from sidecar.sandbox.harness import Sandbox, demo_app_source, python

#: Children exec the very interpreter binary running us through this magic link,
#: not by path: a non-root user may lack search permission on the directories
#: of a venv's base interpreter (pyenv under /root, say) yet still run it.
SELF_EXE = "/proc/self/exe"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalSandbox(Sandbox):
    """The demo app and a sidecar as child processes of this one."""

    mode = "local"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.app_root = "/"
        logs = os.path.join(self.workdir, "root", rootfs.LOG_DIR.lstrip("/"))
        os.makedirs(logs)
        self.log_file = os.path.join(logs, "app.log")
        self._sidecar_port = self.port or _free_port(self.host)

    def start(self) -> LocalSandbox:
        """Start the app, then a sidecar pointed at its pid."""
        try:
            self._start_app()
            self._start_sidecar()
            self._supervise_app()
        except BaseException:
            self.close()
            raise
        return self

    def _start_app(self) -> None:
        argv = [
            "demo-app",  # argv[0] only: the binary is SELF_EXE, the app names itself
            "-I",
            demo_app_source(),
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--log-file",
            self.log_file,
            "--interval",
            str(self.interval),
            "--max-log-bytes",
            str(self.log_max_bytes),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DB_PASSWORD": self.canary,
            "APP_ENV": "sandbox",
            "HOSTNAME": "demo-app",
            "LANG": "C.UTF-8",
        }
        p = self._spawn_app(argv, env, executable=SELF_EXE)
        self._wait_app(p)

    def _start_sidecar(self) -> None:
        assert self._app is not None
        argv = [
            python(),
            "-m",
            "sidecar",
            "serve",
            "--listen",
            f"{self.host}:{self._sidecar_port}",
        ]
        for kv in [*self.sidecar_settings(), f"local_root={self._app.pid}"]:
            argv += ["--set", kv]
        self.address = self._spawn_sidecar(argv, executable=SELF_EXE)

    @property
    def app_host_pid(self) -> int:
        assert self._app is not None
        return self._app.pid

    @property
    def app_pid(self) -> int:
        return self.app_host_pid

    @property
    def sidecar_host_pid(self) -> int:
        assert self._sidecar is not None
        return self._sidecar.pid

    @property
    def sidecar_pid(self) -> int:
        return self.sidecar_host_pid

    def _restart(self) -> None:
        """Restart the app, and the sidecar with it (it is told the app's pid)."""
        for p in (self._sidecar, self._app):
            if p is not None:
                self._stop_proc(p)
                self._procs.remove(p)
        self._start_app()
        self._start_sidecar()
