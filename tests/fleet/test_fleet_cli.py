"""Fleet mode end to end: real sandbox pods, a stopped sidecar, a dead port, a refused token."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from protos import common_pb2, processes_pb2
from sidecar.sandbox.harness import Sandbox
from tests.fleet.conftest import Fleet
from tests.fleet.pods import started_pods
from tests.integration.fake_apiserver import FakeApiServer, make_pod
from tui.cli.main import main as cli_main
from tui.client import Client, Target


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli_main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _pids_of(address: str, token: str) -> set[int]:
    with Client(Target(address, token)) as c:
        resp = c.processes.ListProcesses(
            processes_pb2.ListProcessesRequest(), timeout=10, metadata=c.metadata
        )
    return {p.ref.pid for p in resp.processes}


def test_ps_merges_every_answering_pod_and_names_each_failure(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ps` over 3 good pods, a pod refusing the token and a dead port: one table with a POD
    column holding every process of every good pod (checked against each pod asked alone),
    sorted by cpu; each failure on stderr with its reason; exit 1 (partial)."""
    rc, out, err = _run(
        ["ps", "--addr", fleet.addr(), "--token", fleet.token, "-o", "json", "--timeout", "5"],
        capsys,
    )
    assert rc == 1
    doc = json.loads(out)
    by_pod: dict[str, set[int]] = {}
    for row in doc["processes"]:
        by_pod.setdefault(row["pod"], set()).add(row["ref"]["pid"])
    assert set(by_pod) == set(fleet.good.addresses)
    for address in fleet.good.addresses:
        # Processes in a pod are stable (pause, the app and its worker, the sidecar).
        assert by_pod[address] == _pids_of(address, fleet.token)
    cpus = [row.get("cpu_percent", -1.0) for row in doc["processes"]]
    assert cpus == sorted(cpus, reverse=True)
    status = {p["pod"]: p for p in doc["pods"]}
    assert status[fleet.foreign.address]["ok"] is False
    assert "not authenticated" in status[fleet.foreign.address]["error"]
    assert "unavailable" in status[fleet.dead]["error"]
    assert f"{fleet.foreign.address}: not authenticated" in err
    assert f"{fleet.dead}: sidecar unavailable" in err
    assert "3 of 5 pods answered" in err


def test_ps_table_has_pod_column_and_footer(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table form: POD first, each good pod present, a footer saying how many answered."""
    rc, out, _ = _run(
        ["ps", "--addr", fleet.addr(foreign=False, dead=False), "--token", fleet.token], capsys
    )
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["POD", "PID", "PPID"]
    assert {ln.split()[0] for ln in lines[1:-1]} == set(fleet.good.addresses)
    assert lines[-1].endswith("across 3 of 3 pods")


def test_single_address_keeps_the_single_pod_output(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """One --addr is not a fleet: the plain ps table, no POD column, no footer."""
    rc, out, _ = _run(["ps", "--addr", fleet.good.addresses[0], "--token", fleet.token], capsys)
    assert rc == 0
    assert out.splitlines()[0].split()[0] == "PID"
    assert "across" not in out


def test_repeated_addr_is_the_same_fleet_as_commas(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """--addr A --addr B asks both, like --addr A,B."""
    a, b = fleet.good.addresses[:2]
    rc, out, _ = _run(
        ["ps", "--addr", a, "--addr", b, "--token", fleet.token, "-o", "json"], capsys
    )
    assert rc == 0
    assert {p["pod"] for p in json.loads(out)["pods"]} == {a, b}


@pytest.mark.slow  # ~20 s: closing a sandbox pod whose sidecar was stopped mid-call (see report)
def test_stopped_sidecar_costs_one_timeout_not_a_hang(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGSTOPped sidecar (accepts nothing, answers nothing): the command ends within the
    per-pod timeout plus a little, with the other pods' rows complete and the stopped pod
    named as slow. (A pod of its own, thrown away after.)"""
    with started_pods(1, interval=2.0, token=fleet.token) as extra:
        _stopped_sidecar(fleet, extra.pods[0], capsys)


def _stopped_sidecar(fleet: Fleet, slow: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    os.kill(slow.sidecar_host_pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc, out, err = _run(
            [
                "ps",
                "--addr",
                f"{slow.address},{fleet.addr(foreign=False)}",
                "--token",
                fleet.token,
                "-o",
                "json",
                "--timeout",
                "2",
            ],
            capsys,
        )
        took = time.monotonic() - t0
    finally:
        # Killed, not resumed: this pod is thrown away, and a resumed sidecar with a
        # half-received call takes its full stop timeout to shut down.
        os.kill(slow.sidecar_host_pid, signal.SIGKILL)
    assert rc == 1
    assert took < 2 + 3.0, took
    doc = json.loads(out)
    assert {r["pod"] for r in doc["processes"]} == set(fleet.good.addresses)
    assert f"{slow.address}: no answer within 2s" in err
    for address in fleet.good.addresses:
        assert {r["ref"]["pid"] for r in doc["processes"] if r["pod"] == address} == _pids_of(
            address, fleet.token
        )


def test_logs_merged_by_time_and_prefixed_by_pod(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`logs -n 5 -o json`: every good pod's lines, in time order across pods, each tagged
    with its pod; per pod as many lines as that pod returns alone for the same request (asked
    alone just before and just after: a source may gain its 5th line meanwhile)."""

    def alone() -> dict[str, int]:
        counts = {}
        for address in fleet.good.addresses:
            rc, text, _ = _run(
                ["logs", "-n", "5", "--addr", address, "--token", fleet.token, "-o", "json"],
                capsys,
            )
            assert rc == 0
            counts[address] = len(text.splitlines())
        return counts

    before = alone()
    rc, out, err = _run(
        [
            "logs",
            "-n",
            "5",
            "--addr",
            fleet.addr(dead=False, foreign=False),
            "--token",
            fleet.token,
            "-o",
            "json",
        ],
        capsys,
    )
    assert rc == 0, err
    recs = [json.loads(ln) for ln in out.splitlines()]
    times = [int(r["time_ns"]) for r in recs]
    assert times == sorted(times)
    assert {r["pod"] for r in recs} == set(fleet.good.addresses)
    after = alone()
    for address in fleet.good.addresses:
        n = sum(1 for r in recs if r["pod"] == address)
        assert before[address] <= n <= after[address]


def test_logs_text_lines_start_with_the_pod(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Text form: each line begins with its pod, then the usual record line; a dead pod is
    reported on stderr."""
    rc, out, err = _run(
        ["logs", "-n", "3", "--addr", fleet.addr(foreign=False), "--token", fleet.token], capsys
    )
    assert rc == 1
    lines = out.splitlines()
    assert lines
    assert all(ln.split()[0] in fleet.good.addresses for ln in lines)
    assert f"{fleet.dead}: sidecar unavailable" in err


def test_logs_follow_streams_every_pod_until_interrupted(fleet: Fleet, tmp_path: Path) -> None:
    """`logs -f` over the fleet (a real CLI process): new lines of every pod arrive, merged,
    prefixed by pod; SIGINT ends it."""
    import subprocess
    import sys

    out_path = tmp_path / "out"
    with out_path.open("w") as out:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tui.cli.main",
                "logs",
                "-f",
                "-n",
                "0",
                "--addr",
                fleet.addr(foreign=False, dead=False),
                "--token",
                fleet.token,
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        try:
            deadline = time.monotonic() + 15
            seen: set[str] = set()
            while time.monotonic() < deadline and seen != set(fleet.good.addresses):
                time.sleep(0.3)
                seen = {ln.split()[0] for ln in out_path.read_text().splitlines() if ln}
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(10)
    assert seen == set(fleet.good.addresses)


def test_events_merged_by_time(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """`events -o json`: every pod's recorder start, in time order, tagged by pod."""
    rc, out, _ = _run(
        [
            "events",
            "--addr",
            fleet.addr(foreign=False, dead=False),
            "--token",
            fleet.token,
            "-o",
            "json",
        ],
        capsys,
    )
    assert rc == 0
    evs = [json.loads(ln) for ln in out.splitlines()]
    started = {e["pod"] for e in evs if e["kind"] == "EVENT_KIND_RECORDER_STARTED"}
    assert started == set(fleet.good.addresses)
    times = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in evs]
    assert times == sorted(times)


def test_net_summary_sums_remotes_across_pods(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`net summary`: the app's listener is seen in every pod, the sidecar's own gRPC
    connection shows up as a remote with the pod count of the fleet."""
    rc, out, _ = _run(
        [
            "net",
            "summary",
            "--addr",
            fleet.addr(foreign=False, dead=False),
            "--token",
            fleet.token,
            "-o",
            "json",
        ],
        capsys,
    )
    assert rc == 0
    doc = json.loads(out)
    assert all(p["ok"] for p in doc["pods"])
    grpc_remote = [r for r in doc["by_remote"] if r["remote_port"] == 7777]
    assert grpc_remote and len(grpc_remote[0]["pods"]) == 3
    assert doc["total"] >= sum(r["count"] for r in doc["by_remote"])


def test_other_read_commands_print_one_section_per_pod(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls /app` (no merge defined): a '==> pod <==' section per pod, in the order given, each
    holding that pod's listing; the dead pod's section says why it is empty."""
    rc, out, _ = _run(
        ["ls", "/app", "--addr", fleet.addr(foreign=False), "--token", fleet.token], capsys
    )
    assert rc == 1
    heads = [ln[4:-4] for ln in out.splitlines() if ln.startswith("==> ")]
    assert heads == [*fleet.good.addresses, fleet.dead]
    assert out.count("main.py") == 3
    assert "(no answer: sidecar unavailable" in out


def test_writes_refuse_a_fleet(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """`kill` over several pods is refused before anything is sent (exit 2)."""
    rc, _, err = _run(
        ["kill", "1", "--addr", fleet.addr(foreign=False, dead=False), "--token", fleet.token],
        capsys,
    )
    assert rc == 2
    assert "one pod at a time" in err


def test_deploy_target_fans_out_to_every_pod_through_kubernetes(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ps --target deploy/web` against a (fake) API server whose 3 pods forward to the sandbox
    pods, a pod without a sidecar and one whose sidecar port is dead: every sidecar pod is
    asked through its own port-forward, the token comes from the pods' shared Secret (read
    once), the two failures are named on stderr."""
    api = FakeApiServer().start()
    try:
        ann = {"borescope.io/status": "injected", "borescope.io/token-secret": "bs-token"}
        for i, sb in enumerate(fleet.good.pods):
            api.state.add_pod(
                make_pod(
                    f"web-{i}",
                    "shop",
                    labels={"app": "web"},
                    annotations=ann,
                    containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
                ),
                address=sb.address,
            )
        api.state.add_pod(make_pod("web-plain", "shop", labels={"app": "web"}))
        api.state.add_pod(
            make_pod(
                "web-dead",
                "shop",
                labels={"app": "web"},
                annotations=ann,
                containers=[{"name": "app", "image": "a"}, {"name": "borescope", "image": "b"}],
            ),
            address=fleet.dead,
        )
        api.state.secrets[("shop", "bs-token")] = {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "bs-token", "namespace": "shop"},
            "data": {"token": base64.b64encode(fleet.token.encode()).decode()},
        }
        api.state.deployments[("shop", "web")] = {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
        }
        kubeconfig = api.kubeconfig(str(tmp_path / "kubeconfig"), namespace="shop")
        rc, out, err = _run(
            ["ps", "--target", "deploy/web", "--kubeconfig", kubeconfig, "-o", "json"], capsys
        )
        assert rc == 1, err
        doc = json.loads(out)
        assert {r["pod"] for r in doc["processes"]} == {"web-0", "web-1", "web-2"}
        assert "web-plain: no borescope sidecar" in err
        assert "web-dead: sidecar unavailable" in err
        assert "(port-forward: port-forward to pod web-dead port 7777 failed" in err
        assert len(api.state.seen("GET", "/secrets/bs-token")) == 1
    finally:
        api.stop()


def test_process_request_is_bounded_per_pod(fleet: Fleet) -> None:
    """What each pod is asked for in the merged ps: only its top N (page_size), sorted by cpu;
    the sidecar honours the bound, so the client holds at most N rows per pod."""
    with Client(Target(fleet.good.addresses[0], fleet.token)) as c:
        resp = c.processes.ListProcesses(
            processes_pb2.ListProcessesRequest(
                sort=processes_pb2.PROCESS_SORT_CPU,
                descending=True,
                page=common_pb2.PageRequest(page_size=2),
            ),
            timeout=10,
            metadata=c.metadata,
        )
    assert len(resp.processes) == 2


def test_events_follow_merges_every_pod(fleet: Fleet, tmp_path: Path) -> None:
    """`events -f` over the fleet (a real CLI process): every pod's recorded events arrive,
    prefixed by pod, through one stream per pod; SIGINT ends it."""
    import subprocess
    import sys

    out_path = tmp_path / "out"
    with out_path.open("w") as out:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tui.cli.main",
                "events",
                "-f",
                "--addr",
                fleet.addr(foreign=False, dead=False),
                "--token",
                fleet.token,
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        try:
            deadline = time.monotonic() + 15
            seen: set[str] = set()
            while time.monotonic() < deadline and seen != set(fleet.good.addresses):
                time.sleep(0.3)
                seen = {
                    ln.split()[0]
                    for ln in out_path.read_text().splitlines()
                    if "recorder_started" in ln
                }
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(10)
    assert seen == set(fleet.good.addresses)


def test_net_sockets_lists_every_pod_with_a_pod_column(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`net listen`: each pod's listeners (the app's :8080, the sidecar's :7777) in one table,
    first column the pod."""
    rc, out, _ = _run(
        ["net", "listen", "--addr", fleet.addr(foreign=False, dead=False), "--token", fleet.token],
        capsys,
    )
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[0] == "POD"
    for address in fleet.good.addresses:
        mine = [ln for ln in lines[1:] if ln.split()[0] == address]
        assert any(":8080" in ln for ln in mine) and any(":7777" in ln for ln in mine)
