"""borescope on real containers: the chart's injected pod, run by podman.

The app is a static binary in an image FROM scratch (no shell); the sidecar
is the image ``sidecar/Containerfile`` builds; the pod spec is what the
injector's own code makes of a sample pod; ``podman kube play`` runs it with
``shareProcessNamespace``. The CLI and TUI run in the pod's network
namespace (the sidecar listens on the pod's loopback only, as deployed) and
authenticate with the token from the pod's Secret.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sidecar.injector import names
from tests.podman import podspec
from tests.podman.pod import PYTHON, PodmanPod

# The first test also builds the images: cold on a fresh CI machine that is
# debootstrap plus two package installs, well past the default 300 s timeout.
pytestmark = [pytest.mark.podman, pytest.mark.slow, pytest.mark.timeout(1200)]

LOG_FILE = "/var/log/demo/app.log"


def cli_json(pod: PodmanPod, *args: str) -> Any:
    """Run a CLI command with ``-o json`` and parse its output (fails with its stderr)."""
    proc = pod.cli(*args, "-o", "json")
    assert proc.returncode == 0, f"borescope {' '.join(args)} failed: {proc.stderr}"
    return json.loads(proc.stdout)


def cli_json_lines(pod: PodmanPod, *args: str) -> list[Any]:
    """A CLI command whose ``-o json`` output is one JSON object per line."""
    proc = pod.cli(*args, "-o", "json")
    assert proc.returncode == 0, f"borescope {' '.join(args)} failed: {proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def host_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as the host sees it, key -> value."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_the_pod_spec_is_the_injectors(podman_pod: PodmanPod) -> None:
    """The played pod shares its PID namespace and carries the injector's sidecar, unchanged
    except for the two downward-API values podman cannot resolve."""
    spec = podman_pod.spec
    assert spec["spec"]["shareProcessNamespace"] is True
    injected, _ = podspec.inject(
        podspec.sample_pod(podman_pod.name, podman_pod.images.app),
        podman_pod.images.sidecar,
        podman_pod.secret,
    )
    want = podspec.container(injected, names.SIDECAR_CONTAINER)
    got = podspec.container(spec, names.SIDECAR_CONTAINER)
    assert got["securityContext"] == want["securityContext"]
    assert got["image"] == podman_pod.images.sidecar
    resolved = {e["name"] for e in got["env"] if "value" in e} - {
        e["name"] for e in want["env"] if "value" in e
    }
    assert resolved == {"BORESCOPE_NAMESPACE", "BORESCOPE_NODE_NAME"}
    # podman really shares the PID namespace: the sidecar and the app see one.
    app_ns = Path(f"/proc/{podman_pod.app_pid}/ns/pid").readlink()
    assert Path(f"/proc/{podman_pod.sidecar_pid}/ns/pid").readlink() == app_ns


def test_the_apps_processes_are_visible(podman_pod: PodmanPod) -> None:
    """`borescope ps` lists the distroless app and its worker, in the app's container."""
    listing = cli_json(podman_pod, "ps")
    procs = listing.get("processes", listing)
    by_name = {p.get("name"): p for p in procs}
    assert "demo" in by_name, f"no demo process in {sorted(by_name)}"
    assert "demo-worker" in by_name, f"no demo-worker process in {sorted(by_name)}"
    app, worker = by_name["demo"], by_name["demo-worker"]
    assert worker["ppid"] == app["ref"]["pid"]
    assert app["uid"] == podspec.APP_UID
    assert app["cmdline"] == ["/demo"]


def test_the_apps_files_are_visible(podman_pod: PodmanPod) -> None:
    """`ls /` shows the app image's root (the binary, no /bin): the default container is
    the app, not podman's infra process (catatonit); `cat` of its log file gives the bytes
    the host reads there."""
    listing = cli_json(podman_pod, "ls", "/")
    entries = {e["name"] for e in listing}
    assert "demo" in entries
    assert "bin" not in entries, "an image FROM scratch has no /bin"
    proc = podman_pod.cli("cat", LOG_FILE)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    on_host = Path(f"/proc/{podman_pod.app_pid}/root{LOG_FILE}").read_text().splitlines()[0]
    assert first == on_host
    assert json.loads(first)["msg"] in {"listening on :8080", "worker tick"}


def test_the_listening_port_is_visible(podman_pod: PodmanPod) -> None:
    """`borescope net listen` shows :8080 held by the app, as `ss` in the pod's netns does."""
    socks = cli_json(podman_pod, "net", "listen")
    ours = [s for s in socks if s["local_port"] == podspec.APP_PORT]
    assert len(ours) == 1, f"no single listener on {podspec.APP_PORT}: {socks}"
    assert ours[0]["state"] == "LISTEN"
    assert ours[0]["uid"] == podspec.APP_UID
    assert [o["name"] for o in ours[0]["owners"]] == ["demo"]
    ss = podman_pod.in_netns(["ss", "-Hltn", f"sport = :{podspec.APP_PORT}"])
    assert f":{podspec.APP_PORT}" in ss.stdout


def test_the_log_file_is_a_source_and_its_records_are_read(podman_pod: PodmanPod) -> None:
    """`borescope logs` finds the app's log file and returns its JSON records."""
    sources = cli_json_lines(podman_pod, "logs", "--sources")
    assert LOG_FILE in json.dumps(sources)
    records = cli_json_lines(podman_pod, "logs", "--source", LOG_FILE, "-n", "5")
    assert records, "no records from the app's log file"
    assert any("worker tick" in json.dumps(r) for r in records)


def test_the_app_image_has_no_shell_and_the_sidecar_image_has_one(podman_pod: PodmanPod) -> None:
    """Exec of a shell fails in the app container and works in the sidecar; borescope sees
    no /bin/sh in the app's root."""
    app = subprocess.run(
        ["podman", "exec", f"{podman_pod.name}-{podspec.APP_CONTAINER}", "/bin/sh", "-c", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert app.returncode != 0
    assert "no such file" in (app.stderr + app.stdout).lower()
    sidecar = subprocess.run(
        [
            "podman",
            "exec",
            f"{podman_pod.name}-{names.SIDECAR_CONTAINER}",
            "sh",
            "-c",
            "echo $((6*7))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert sidecar.returncode == 0, sidecar.stderr
    assert sidecar.stdout.strip() == "42"
    stat = podman_pod.cli("stat", "/bin/sh")
    assert stat.returncode == 1
    assert "not found" in stat.stderr.lower() or "NOT_FOUND" in stat.stderr


def test_no_token_is_unauthenticated(podman_pod: PodmanPod) -> None:
    """Without the token (or with a wrong one) the sidecar answers UNAUTHENTICATED."""
    none = podman_pod.cli("info", token="")
    assert none.returncode == 1
    assert "not authenticated" in none.stderr
    wrong = podman_pod.cli("info", token="not-the-token")
    assert wrong.returncode == 1
    assert "not authenticated" in wrong.stderr
    code = (
        "import grpc; from protos import info_pb2, info_pb2_grpc\n"
        f"ch = grpc.insecure_channel({podman_pod.address!r})\n"
        "try:\n"
        "    info_pb2_grpc.InfoStub(ch).GetInfo(info_pb2.GetInfoRequest(), timeout=10)\n"
        "    print('OK')\n"
        "except grpc.RpcError as e:\n"
        "    print(e.code().name)\n"
    )
    raw = podman_pod.in_netns([PYTHON, "-c", code])
    assert raw.stdout.strip() == "UNAUTHENTICATED", raw.stderr


def test_the_sidecar_runs_with_the_uid_and_capabilities_the_chart_chose(
    podman_pod: PodmanPod,
) -> None:
    """/proc/<sidecar>/status on the host: the UID/GID from the injected securityContext,
    no capabilities at all (drop ALL), no_new_privs, a seccomp filter; root fs read-only."""
    sc = podspec.container(podman_pod.spec, names.SIDECAR_CONTAINER)["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    status = host_status(podman_pod.sidecar_pid)
    assert "borescope" in Path(f"/proc/{podman_pod.sidecar_pid}/cmdline").read_bytes().decode()
    assert status["Uid"].split() == [str(sc["runAsUser"])] * 4
    assert status["Gid"].split() == [str(sc["runAsGroup"])] * 4
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, f"{cap} = {status[cap]}"
    assert status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
    assert status["Seccomp"] == "2"  # seccompProfile RuntimeDefault: a filter is on
    touch = subprocess.run(
        ["podman", "exec", f"{podman_pod.name}-{names.SIDECAR_CONTAINER}", "touch", "/x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert touch.returncode != 0 and "read-only" in touch.stderr.lower()


def test_the_tui_starts_against_the_sidecar(podman_pod: PodmanPod) -> None:
    """The Textual app (headless) follows the app's log records, then lists the pod's
    processes on key 2."""
    proc = podman_pod.in_netns(
        [
            PYTHON,
            "-m",
            "tests.podman.tui_probe",
            "--addr",
            podman_pod.address,
            "--expect-home",
            "worker tick",
            # The process table shows command lines: the app and its worker
            # (both /demo) as the image's user, beside podman's infra process.
            "--expect-processes",
            "/demo",
            "--expect-processes",
            "/catatonit -P",
        ],
        env={"BORESCOPE_TOKEN": podman_pod.token.value},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"processes screens OK", proc.stdout)
