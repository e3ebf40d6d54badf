"""The sandbox pod proper (root): namespaces, a chrooted shell-less app, a sidecar.

Process layout (host view)::

    setpriv --pdeathsig KILL unshare --pid --net --mount --fork --kill-child --mount-proc
      └─ pause                      pid 1 of the pod; own mount namespace
    nsenter -t PAUSE --pid --net    (host side, waits)
      └─ demo-app /app/main.py      pod pid 2..; own mount ns; chroot; uid 10001
           └─ demo-app --worker
    nsenter -t PAUSE --pid --net    (host side, waits)
      └─ python -m sidecar serve    own mount ns with /proc of the pod; the normal
                                    root fs; root, or uid 10001 with no capabilities
                                    (``sidecar_as_app_user``)

Tools it runs: setpriv, unshare, nsenter (util-linux), ip (iproute2), ldd (libc-bin).

The app (and its worker) and the sidecar each sit in a cgroup of their own
(``<harness cgroup>/borescope-sandbox-XXXX/{demo-app,borescope}``); the app's
has a 256 MiB memory limit and a 1-CPU quota where the controllers are writable.

Killing pause ends the PID namespace: the kernel kills every process in it.
The harness dies -> setpriv's parent-death signal kills unshare -> its
``--kill-child`` kills pause, so nothing outlives even a crashed harness. All
mounts live in the app's and sidecar's private mount namespaces and vanish
with them; the network namespace has no name (nothing under /run/netns); the
cgroups are removed by ``close()`` (a killed harness leaves them empty).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from typing import Any

from sidecar.sandbox import cgroups, rootfs
from sidecar.sandbox.forward import Forwarder
from sidecar.sandbox.harness import (
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Sandbox,
    SandboxError,
    base_env,
    demo_app_source,
    python,
)

SIDECAR_PORT = 7777  # inside the pod's own network namespace: no clash between sandboxes
APP_PORT = 8080
APP_MEMORY_BYTES = 256 << 20
APP_CPU_CORES = 1.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _only_child(pid: int, what: str) -> int:
    """The host pid of ``pid``'s single child (nsenter/unshare fork exactly one)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        kids = _children(pid)
        if kids:
            return kids[0]
        time.sleep(0.005)
    raise SandboxError(f"{what}: no child process appeared under pid {pid}")


def _ns_ids(host_pid: int) -> tuple[int, int]:
    """(mount ns, pid ns) inodes: together they name one container of one pod.

    The pid namespace (held by pause for the pod's life) keeps a reused mount
    namespace inode from ever matching another sandbox's processes.
    """
    return (
        os.stat(f"/proc/{host_pid}/ns/mnt").st_ino,
        os.stat(f"/proc/{host_pid}/ns/pid").st_ino,
    )


def ns_pid(host_pid: int) -> int:
    """A process's pid in its own (innermost) PID namespace, from NSpid."""
    try:
        with open(f"/proc/{host_pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except FileNotFoundError:
        pass
    raise SandboxError(f"process {host_pid} is gone")


class PodSandbox(Sandbox):
    """Pause + chrooted app + sidecar in one PID and network namespace (needs root)."""

    mode = "pod"

    def __init__(self, *, sidecar_as_app_user: bool = False, **kw: Any) -> None:
        """Args: sidecar_as_app_user: run the sidecar as the app's uid/gid with no
        capabilities at all (DESIGN's preferred deployment) instead of root."""
        super().__init__(**kw)
        self.sidecar_as_app_user = sidecar_as_app_user
        self.app_uid = rootfs.APP_UID
        self.log_file = rootfs.LOG_DIR + "/app.log"
        self.pause_host_pid = 0
        self._app_host_pid = 0
        self._sidecar_host_pid = 0
        self._forwarder: Forwarder | None = None
        self._root: rootfs.Rootfs | None = None
        self.cgroups: dict[str, cgroups.Cgroup] = {}
        self._app_ns: tuple[int, int] = (0, 0)

    def start(self) -> PodSandbox:
        """Build the root, create the pod, start app and sidecar, open the port-forward."""
        try:
            self._root = rootfs.build(os.path.join(self.workdir, "root"), demo_app_source())
            self.app_root = self._root.path
            group = os.path.basename(self.workdir)
            self.cgroups = {
                "demo-app": cgroups.create(group, "demo-app", APP_MEMORY_BYTES, APP_CPU_CORES),
                "borescope": cgroups.create(group, "borescope"),
            }
            self._start_pause()
            self._start_app()
            self._start_sidecar()
            self._supervise_app()
        except BaseException:
            self.close()
            raise
        return self

    def _start_pause(self) -> None:
        argv = [
            "setpriv",
            "--pdeathsig",
            "KILL",
            "unshare",
            "--pid",
            "--net",
            "--mount",
            "--fork",
            "--kill-child",
            "--mount-proc",
            python(),
            "-m",
            "sidecar.sandbox.pause",
        ]
        p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=base_env(), cwd="/"
        )
        self._procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()  # "ready" once pid 1 is named "pause"
        p.stdout.close()
        if line.strip() != b"ready":
            raise SandboxError(
                f"cannot create the pod's namespaces (unshare exit {p.wait(5)}): "
                "needs root with CAP_SYS_ADMIN; run without root for local mode"
            )
        self.pause_host_pid = _only_child(p.pid, "pause")
        self.netns = f"/proc/{self.pause_host_pid}/ns/net"
        subprocess.run(
            ["nsenter", f"--net={self.netns}", "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
            timeout=10,
        )

    def _enter(self) -> list[str]:
        return ["nsenter", f"--target={self.pause_host_pid}", "--pid", "--net", "--"]

    def _start_app(self) -> None:
        assert self._root is not None
        r = self._root
        argv = [
            *self._enter(),
            python(),
            "-m",
            "sidecar.sandbox.appinit",
            r.path,
            r.stdlib,
            r.empty,
            "--",
            "-I",
            rootfs.APP_CODE,
            "--port",
            str(APP_PORT),
            "--log-file",
            self.log_file,
            "--interval",
            str(self.interval),
            "--max-log-bytes",
            str(self.log_max_bytes),
        ]
        env = {
            **base_env(),  # for appinit; the app itself gets only the APP_ENV_* below
            "APP_ENV_DB_PASSWORD": self.canary,
            "APP_ENV_APP_ENV": "sandbox",
            "APP_ENV_HOSTNAME": "demo-app",  # the pod's name, as Kubernetes sets it
            "APP_ENV_PORT": str(APP_PORT),
            "APP_ENV_LANG": "C.UTF-8",
            "SANDBOX_CGROUP_DIRS": os.pathsep.join(self.cgroups["demo-app"].dirs),
        }
        p = self._spawn_app(argv, env)
        self._app_host_pid = _only_child(p.pid, "app")
        self._wait_app(p)
        # Ready means exec'd in its own mount namespace: that namespace is the container.
        self._app_ns = _ns_ids(self._app_host_pid)

    def _start_sidecar(self) -> None:
        argv = [
            *self._enter(),
            "unshare",
            "--mount",
            "--mount-proc",  # as root, before any privilege is dropped
            "--",
            *self._sidecar_user(),
            python(),
            "-m",
            "sidecar",
            "serve",
            "--listen",
            f"127.0.0.1:{SIDECAR_PORT}",
        ]
        for kv in self.sidecar_settings():
            argv += ["--set", kv]
        p_addr = self._spawn_sidecar(argv)
        assert self._sidecar is not None
        self._sidecar_host_pid = _only_child(self._sidecar.pid, "sidecar")
        self.cgroups["borescope"].add(self._sidecar_host_pid)
        port = int(p_addr.rsplit(":", 1)[1])
        self._forwarder = Forwarder(self.netns, port, self.host, self.port)
        self.address = self._forwarder.address

    def _sidecar_user(self) -> list[str]:
        if not self.sidecar_as_app_user:
            return []
        # The stdout capture is the node's file; this sidecar may read it like the kubelet's API.
        os.chmod(self.stdio_log, 0o644)
        self._write_token_hash(owner=rootfs.APP_UID)  # its Secret, mounted for its uid
        return [
            "setpriv",
            f"--reuid={rootfs.APP_UID}",
            f"--regid={rootfs.APP_GID}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]

    def sidecar_settings(self) -> list[str]:
        """As in every mode, plus container names (the sandbox makes no cgroups to name them)."""
        sidecar_comm = os.path.basename(python())[:15]
        names = f"container_names=demo-app=demo-app,pause=pause,{sidecar_comm}=borescope"
        return [*super().sidecar_settings(), names]

    @property
    def app_host_pid(self) -> int:
        return self._app_host_pid

    @property
    def app_pid(self) -> int:
        return ns_pid(self._app_host_pid)

    @property
    def sidecar_host_pid(self) -> int:
        return self._sidecar_host_pid

    @property
    def sidecar_pid(self) -> int:
        return ns_pid(self._sidecar_host_pid)

    def _restart(self) -> None:
        """SIGTERM the app (as a kubelet would), wait, and start it again."""
        old = self._app
        if old is not None and self._app_host_pid:
            with contextlib.suppress(ProcessLookupError):  # already gone: start anew
                os.kill(self._app_host_pid, 15)
            try:
                old.wait(10)  # nsenter exits with its child
            except subprocess.TimeoutExpired:
                os.kill(self._app_host_pid, 9)
                old.wait(5)
            self._procs.remove(old)
        self._on_app_exit()
        self._start_app()

    def _on_app_exit(self) -> None:
        """Kill what is left of the container, as a runtime does when its main process ends."""
        if not self._app_ns[0]:
            return
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if _ns_ids(int(name)) != self._app_ns:
                    continue
                os.kill(int(name), 9)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue  # gone meanwhile, or not ours to see

    def _teardown(self) -> None:
        if self._forwarder is not None:
            self._forwarder.close()
        # The sidecar first, gracefully (it ends streams with resume cursors)...
        if self._sidecar_host_pid:
            try:
                os.kill(self._sidecar_host_pid, 15)
            except ProcessLookupError:
                pass
            else:
                self._wait_gone(self._sidecar_host_pid, 6.0)
        # ...then pid 1: the kernel kills whatever is left in the PID namespace.
        if self.pause_host_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pause_host_pid, 15)
            # unshare exits with pause; a signal of ours meanwhile only slows it down.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._procs[0].wait(STOP_TIMEOUT_S)
        super()._teardown()
        cgroups.remove_all(list(self.cgroups.values()))

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat", "rb") as f:
                    # A zombie is gone for our purposes: it holds no sockets or mounts.
                    if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        return
            except (ProcessLookupError, FileNotFoundError):
                return
            time.sleep(0.02)
