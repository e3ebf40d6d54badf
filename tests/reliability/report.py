"""Render the reliability report (docs/reliability.md) from a run's results.

The conftest collects, per test, its outcome, duration and docstring, plus
the figures tests measured; ``render`` turns that into Markdown. Regenerate
from the last run's saved results with::

    .venv/bin/python -m tests.reliability.report .pytest_cache/reliability.json > docs/reliability.md

or run the suite with ``--reliability-report docs/reliability.md``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from typing import Any

#: Module stem -> (family title, what it proves).
FAMILIES: dict[str, tuple[str, str]] = {
    "test_hostile": (
        "Hostile target roots",
        "Paths built to escape the container root, hang the reader or trick the display, "
        "read over the real gRPC API; a sidecar running as a non-root UID; mounts inside "
        "the target; a target that exits mid-read. Nothing escapes, nothing hangs.",
    ),
    "test_canaries": (
        "Secret canaries",
        "The app carries canaries in its env, argv, a mounted Secret file and a log line; "
        "every string-returning RPC is walked; the audit log (the sidecar's stdout) is "
        "captured and searched.",
    ),
    "test_auth": (
        "Auth",
        "Every method of every service, from the proto descriptors: no credentials, a "
        "wrong token, and a client running as the app's UID inside the pod's namespaces.",
    ),
    "test_faults": (
        "Faults",
        "Connections killed mid-stream, a stopped client, an app restart, a sidecar "
        "SIGTERM and restart, log rotation by rename and copytruncate, a full download "
        "destination.",
    ),
    "test_load": (
        "Load",
        "Concurrent clients mixing listings, downloads and follows against a sidecar "
        "process; errors, latency per RPC, and RSS/fds/threads before and after.",
    ),
    "test_fuzz": (
        "Fuzzing",
        "Hypothesis strategies generated from the proto descriptors for every request "
        "message of every service; only documented status codes may come back.",
    ),
    "test_fds": (
        "Long-lived fds",
        "Fds held on the app's log: the flight recorder's readers across forced source "
        "rediscoveries, and FollowLogs calls refused after their file readers were opened.",
    ),
    "test_churn": (
        "Churn",
        "Connect/disconnect cycles against a sidecar process; fds and threads after.",
    ),
}


#: Defects this suite found, what they did, where they were fixed, which test guards them.
FINDINGS: tuple[tuple[str, str, str], ...] = (
    (
        "argv secrets shown to every client",
        "ListProcesses/GetProcess returned `--db-password=...` values in the command line "
        "even with reveal_secrets off (only env values were redacted).",
        "agent/_proc_detail.py `Redactor.argv`, applied in sidecar/services/processes.py; "
        "test_canaries.py",
    ),
    (
        "UNKNOWN for paths that are not UTF-8",
        "an error message naming a raw_path with invalid UTF-8 could not be encoded as "
        "status details, so the call ended UNKNOWN with a gRPC-internal message.",
        "sidecar/interceptors/errors.py (`printable`: undecodable bytes shown as `\\xNN`); "
        "test_fuzz.py::test_undecodable_raw_path_*",
    ),
    (
        "INTERNAL for an unknown FileType in Find",
        "a FileType number the server does not know raised ValueError in the servicer.",
        "sidecar/services/files.py (INVALID_ARGUMENT naming the field and the known types); "
        "test_fuzz.py::test_find_with_an_unknown_file_type_*",
    ),
    (
        "INTERNAL for undecodable request bytes",
        "gRPC's own deserializer failure answered INTERNAL \"Exception deserializing "
        'request" (before auth and audit); now INVALID_ARGUMENT after auth, audited.',
        "sidecar/interceptors/errors.py (`lenient` deserializer); "
        "test_fuzz.py::test_raw_wire_bytes_*",
    ),
    (
        "traceback from `borescope cp` on a full disk",
        "ENOSPC while writing the download escaped as a Python traceback. Now one line, "
        "`no space left on device writing DEST`, exit 1; the partial file is removed (a "
        "full disk is not left full); other write errors keep it for a resume.",
        "tui/transfer.py; test_faults.py::test_download_into_a_full_disk_*",
    ),
    (
        "FollowFile of an exited container never ended",
        "the stream kept polling a root that no longer exists until the client's deadline.",
        "sidecar/services/files.py (NOT_FOUND naming the container, resume cursor in the "
        "trailer); test_hostile.py::test_target_exits_mid_read",
    ),
    (
        "fd leak in the flight recorder",
        "every 30 s the recorder opened a reader per log source and dropped the ones it "
        "already had without closing them: one fd per source per 30 s, until EMFILE. It "
        "was also the fd the load run saw outlive its follows on the followed log.",
        "agent/_recorder_watch.py; test_fds.py::test_recorder_rediscovery_*, test_load.py",
    ),
    (
        "fd leak on a refused FollowLogs",
        "FollowLogs opened a reader per log file before the recorder's reader; a malformed "
        "or too-new `recorder` cursor then raised INVALID_ARGUMENT and the file readers "
        "were never closed: one fd per source per refused call, for any client.",
        "sidecar/services/logs.py (recorder reader first); "
        "test_fds.py::test_follow_logs_refused_for_its_recorder_cursor_*",
    ),
)

_LATENCY = " latency p50 / p99"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _cell(text: Any) -> str:
    """One Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _base(name: str) -> tuple[str, str]:
    """``test_x[param]`` -> (``test_x``, ``param``)."""
    if name.endswith("]") and "[" in name:
        i = name.index("[")
        return name[:i], name[i + 1 : -1]
    return name, ""


def _ok(outcome: str) -> bool:
    return outcome == "passed"


def _groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parametrized cases of one test function folded into one entry, in order."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        base, param = _base(r["name"])
        g = out.setdefault(
            base, {"name": base, "doc": r["doc"], "params": [], "rows": [], "duration": 0.0}
        )
        g["rows"].append(r)
        g["duration"] += r["duration"]
        if param:
            g["params"].append(param)
    return list(out.values())


def _outcome(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["outcome"]] += 1
    if len(rows) == 1:
        return rows[0]["outcome"]
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _counts(rows: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    """(passed, failed or errored or xpassed, xfailed, skipped)."""
    passed = sum(1 for r in rows if _ok(r["outcome"]))
    xfailed = sum(1 for r in rows if r["outcome"].startswith("xfailed"))
    skipped = sum(1 for r in rows if r["outcome"] == "skipped")
    return passed, len(rows) - passed - xfailed - skipped, xfailed, skipped


def _figures(figs: list[dict[str, Any]]) -> list[str]:
    """Latency figures as one table per RPC, the rest as name/value rows."""
    out: list[str] = []
    lat = [f for f in figs if str(f["name"]).endswith(_LATENCY)]
    rest = [f for f in figs if f not in lat]
    if lat:
        out += ["", "Latency per RPC (ms):", "", "| RPC | p50 | p99 | calls, single-client p50 |",
                "|---|---:|---:|---|"]  # fmt: skip
        for f in lat:
            p50, _, p99 = str(f["value"]).partition(" / ")
            rpc = str(f["name"])[: -len(_LATENCY)]
            out.append(f"| {rpc} | {p50} | {p99} | {_cell(f['note'])} |")
    if rest:
        out += ["", "| figure | value | unit | note |", "|---|---|---|---|"]
        for f in rest:
            out.append(
                f"| {_cell(f['name'])} | {_cell(_fmt(f['value']))} | {_cell(f['unit'])} "
                f"| {_cell(f['note'])} |"
            )
    return out


def render(results: dict[str, Any]) -> str:
    """The Markdown report for one run's ``results`` (see tests/reliability/conftest.py)."""
    tests = results.get("tests", {})
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for nodeid, t in sorted(tests.items()):
        by_family[t["module"]].append({"id": nodeid, **t})
    figs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in results.get("figures", []):
        figs[f["family"]].append(f)
    passed, failed, known, skipped = _counts(list(tests.values()))
    wall = results.get("finished", time.time()) - results.get("started", time.time())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.get("started", 0)))
    machine = results.get("machine", "")
    commit = results.get("commit", "")
    out = [
        "# Reliability and security report",
        "",
        "Generated by `tests/reliability` (`.venv/bin/python -m pytest -m reliability "
        "tests/reliability --reliability-report docs/reliability.md`; `make soak` for the "
        "long run). Do not edit by hand.",
        "",
        f"- Run: {when}, {'soak' if results.get('soak') else 'CI length'}, wall time {wall:.0f} s"
        + (f"; {machine}" if machine else "")
        + (f"; commit {commit}" if commit else ""),
        f"- Cases: {len(tests)} tests, {passed} passed, {failed} failed, "
        f"{known} known defects not fixed (xfail), {skipped} skipped",
        "",
    ]
    order = [m for m in FAMILIES if m in by_family or m in figs]
    order += sorted((set(by_family) | set(figs)) - set(FAMILIES))
    out += ["## Summary", "", "| family | cases | passed | failed | xfail | skipped | s |",
            "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for mod in order:
        rows = by_family.get(mod, [])
        p, f, x, k = _counts(rows)
        secs = sum(r["duration"] for r in rows)
        title = FAMILIES.get(mod, (mod, ""))[0]
        out.append(
            f"| [{title}](#{_anchor(title)}) | {len(rows)} | {p} | {f} | {x} | {k} | {secs:.0f} |"
        )
    out += ["", "## Defects found and fixed", "", "| defect | what happened | fix and guard |",
            "|---|---|---|"]  # fmt: skip
    out += [f"| {a} | {b} | {c} |" for a, b, c in FINDINGS]
    out.append("")
    for mod in order:
        title, what = FAMILIES.get(mod, (mod, ""))
        rows = by_family.get(mod, [])
        p, f, x, k = _counts(rows)
        out += [f"## {title}", "", what, ""]
        out.append(
            f"{len(rows)} case{'s' if len(rows) != 1 else ''}: {p} passed"
            + (f", {f} failed" if f else "")
            + (f", {x} known defects (xfail)" if x else "")
            + (f", {k} skipped" if k else "")
            + "."
        )
        if mod == "test_load":
            out += [
                "",
                "Latencies are measured by clients on the same 2-core machine as the sidecar "
                "(shared with other work): under load they are queueing time in one saturated "
                "Python process; compare them with the single-client figure beside them.",
            ]
        out += ["", "| test | cases | outcome | s | what it proves |", "|---|---:|---|---:|---|"]
        groups = _groups(rows)
        for g in groups:
            out.append(
                f"| `{g['name']}` | {len(g['rows'])} | {_outcome(g['rows'])} "
                f"| {g['duration']:.1f} | {_cell(g['doc'])} |"
            )
        tried = [g for g in groups if g["params"]]
        for g in tried:
            shown = ", ".join(f"`{_cell(x)}`" for x in g["params"])
            out += ["", f"<details><summary><code>{g['name']}</code>: the {len(g['params'])} "
                    f"cases tried</summary>", "", shown, "", "</details>"]  # fmt: skip
        bad = [r for r in rows if not _ok(r["outcome"])]
        if bad:
            out += ["", "Failures, known defects and skips:", ""]
            for r in bad:
                out.append(f"- `{r['name']}`: {r['outcome']}: {_cell(r['message'])}")
        out += _figures(figs.get(mod, []))
        out.append("")
    return "\n".join(out)


def _anchor(title: str) -> str:
    """GitHub's heading anchor for ``title``."""
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


def main() -> int:
    """Print the report for the results file named on the command line."""
    if len(sys.argv) != 2:
        print("usage: python -m tests.reliability.report RESULTS.json", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        sys.stdout.write(render(json.load(f)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
