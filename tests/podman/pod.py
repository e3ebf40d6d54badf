"""Run the injected pod with ``podman kube play`` and reach its sidecar.

The sidecar listens on 127.0.0.1 inside the pod (as deployed), so clients
run in the pod's network namespace: ``nsenter --net=/proc/<infra pid>/ns/net``.
Everything this module creates (pod, containers, secret, temp dir) is removed
by ``PodmanPod.remove()``; pods left behind by a killed run are removed by
``remove_stale()`` (their owner pid label names a dead process).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.injector import names
from tests.podman import podspec
from tests.podman.build import REPO, BuildError, Images, run

Json = dict[str, Any]

#: Set on the pods this module plays, so a later run can find leftovers.
LABEL_OWNER = "borescope.io/e2e-owner-pid"
NAME_PREFIX = "borescope-e2e-"
PYTHON = str(REPO / ".venv" / "bin" / "python")


@dataclass
class PodmanPod:
    """A running podman pod: the distroless app and the injected sidecar."""

    name: str
    secret: str
    token: podspec.Token
    spec: Json
    """The pod spec as played (after injection and downward-API resolution)."""
    images: Images
    workdir: Path
    infra_pid: int = 0
    app_pid: int = 0
    """Host pid of the app's main process."""
    sidecar_pid: int = 0
    """Host pid of ``borescope serve``."""

    @property
    def netns(self) -> str:
        """The pod's network namespace, for ``nsenter --net=``."""
        return f"/proc/{self.infra_pid}/ns/net"

    @property
    def address(self) -> str:
        """The sidecar's gRPC address inside the pod, from its BORESCOPE_LISTEN."""
        env = podspec.container(self.spec, names.SIDECAR_CONTAINER)["env"]
        return str(next(e["value"] for e in env if e["name"] == "BORESCOPE_LISTEN"))

    def in_netns(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (a host program) inside the pod's network namespace."""
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run(
            ["nsenter", f"--net={self.netns}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=REPO,
            check=False,
        )

    def cli(
        self, *args: str, token: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """The ``borescope`` CLI against the sidecar; the token goes in the environment.

        Args:
            token: the bearer token to send (default: the pod's; "" sends none).
        """
        env = {"BORESCOPE_ADDR": self.address, "BORESCOPE_TOKEN": self.token.value}
        if token is not None:
            env["BORESCOPE_TOKEN"] = token
        return self.in_netns([PYTHON, "-m", "tui.cli.main", *args], env=env, timeout=timeout)

    def container_pid(self, container: str) -> int:
        """Host pid of ``container``'s main process (0 when it is not running)."""
        out = run(
            ["podman", "inspect", "--format", "{{.State.Pid}}", f"{self.name}-{container}"],
            f"podman inspect {container}",
        )
        return int(out.strip() or 0)

    def logs(self, container: str) -> str:
        """What podman captured from ``container``'s stdout/stderr (for failure messages)."""
        proc = subprocess.run(
            ["podman", "logs", "--tail", "40", f"{self.name}-{container}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout + proc.stderr

    def wait_ready(self, timeout: float = 60) -> None:
        """Until ``borescope info`` answers with the pod's token.

        Raises:
            BuildError: it did not within ``timeout`` (with the sidecar's logs).
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.sidecar_pid = self.container_pid(names.SIDECAR_CONTAINER)
            if self.sidecar_pid:
                proc = self.cli("info", "-o", "json", timeout=30)
                if proc.returncode == 0:
                    return
                last = proc.stdout + proc.stderr
            time.sleep(0.5)
        raise BuildError(
            f"the sidecar did not answer within {timeout:.0f} s: {last}\n"
            f"sidecar logs:\n{self.logs(names.SIDECAR_CONTAINER)}"
        )

    def remove(self) -> None:
        """Remove the pod, its containers and secret, and the temp dir (images stay)."""
        subprocess.run(
            ["podman", "pod", "rm", "--force", "--time", "2", self.name],
            capture_output=True,
            check=False,
        )
        subprocess.run(["podman", "secret", "rm", self.secret], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Remove e2e pods (and their secrets) whose owning test process is gone."""
    out = run(["podman", "pod", "ps", "--format", "json"], "podman pod ps")
    removed = []
    for pod in json.loads(out or "[]"):
        owner = (pod.get("Labels") or {}).get(LABEL_OWNER, "")
        if owner.isdigit() and not _pid_alive(int(owner)):
            subprocess.run(
                ["podman", "pod", "rm", "--force", "--time", "1", pod["Name"]],
                capture_output=True,
                check=False,
            )
            subprocess.run(
                ["podman", "secret", "rm", f"{pod['Name']}-token"], capture_output=True, check=False
            )
            removed.append(pod["Name"])
    return removed


def start_pod(images: Images) -> PodmanPod:
    """Inject the sample pod, create its token secret and ``podman kube play`` it.

    Raises:
        BuildError: podman refused the pod or the sidecar never answered.
    """
    remove_stale()
    name = NAME_PREFIX + secrets.token_hex(3)
    secret = f"{name}-token"
    token = podspec.Token.new()
    user_pod = podspec.sample_pod(name, images.app)
    user_pod["metadata"]["labels"][LABEL_OWNER] = str(os.getpid())
    injected, _decision = podspec.inject(user_pod, images.sidecar, secret)
    spec = podspec.resolve_downward_api(injected)
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    pod = PodmanPod(name, secret, token, spec, images, workdir)
    try:
        run(
            ["podman", "secret", "create", secret, "-"],
            "podman secret create",
            input=podspec.secret_payload(token).decode(),
        )
        spec_file = workdir / "pod.json"  # JSON is YAML: kube play reads it as is
        spec_file.write_text(json.dumps(spec, indent=2))
        run(["podman", "kube", "play", str(spec_file)], "podman kube play", timeout=180)
        infra = run(
            ["podman", "pod", "inspect", "--format", "{{.InfraContainerID}}", name],
            "podman pod inspect",
        ).strip()
        pid = run(["podman", "inspect", "--format", "{{.State.Pid}}", infra], "infra pid")
        pod.infra_pid = int(pid.strip())
        pod.wait_ready()
        pod.app_pid = pod.container_pid(podspec.APP_CONTAINER)
    except BaseException:
        pod.remove()
        raise
    return pod


def main() -> int:
    """Build (or find) the images, start the pod, print how to reach it; Enter removes it."""
    from tests.podman.build import build_all

    pod = start_pod(build_all())
    try:
        print(f"pod {pod.name}: app pid {pod.app_pid}, sidecar pid {pod.sidecar_pid}")
        print(
            f"  BORESCOPE_TOKEN={pod.token.value} nsenter --net={pod.netns} "
            f"{PYTHON} -m tui.cli.main tui --addr {pod.address}"
        )
        input("Enter removes the pod... ")
    finally:
        pod.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
