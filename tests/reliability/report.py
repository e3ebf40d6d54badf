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
        "The flight recorder's log readers across forced source rediscoveries.",
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
        "sidecar/interceptors/errors.py; test_fuzz.py::test_undecodable_raw_path_*",
    ),
    (
        "INTERNAL for an unknown FileType in Find",
        "a FileType number the server does not know raised ValueError in the servicer.",
        "sidecar/services/files.py; test_fuzz.py::test_find_with_an_unknown_file_type_*",
    ),
    (
        "INTERNAL for undecodable request bytes",
        "gRPC's own deserializer failure answered INTERNAL \"Exception deserializing "
        'request" (before auth and audit); now INVALID_ARGUMENT after auth, audited.',
        "sidecar/interceptors/errors.py; test_fuzz.py::test_raw_wire_bytes_*",
    ),
    (
        "traceback from `borescope cp` on a full disk",
        "ENOSPC while writing the download escaped as a Python traceback.",
        "tui/cli/files.py; test_faults.py::test_download_into_a_full_disk_*",
    ),
    (
        "FollowFile of an exited container never ended",
        "the stream kept polling a root that no longer exists until the client's deadline.",
        "sidecar/services/files.py (NOT_FOUND with the resume cursor in the trailer); "
        "test_hostile.py::test_target_exits_mid_read",
    ),
    (
        "fd leak in the flight recorder",
        "every 30 s the recorder opened a reader per log source and dropped the ones it "
        "already had without closing them: one fd per source per 30 s, until EMFILE.",
        "agent/_recorder_watch.py; test_fds.py, test_load.py",
    ),
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def render(results: dict[str, Any]) -> str:
    """The Markdown report for one run's ``results`` (see tests/reliability/conftest.py)."""
    tests = results.get("tests", {})
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for nodeid, t in sorted(tests.items()):
        by_family[t["module"]].append({"id": nodeid, **t})
    figs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in results.get("figures", []):
        figs[f["family"]].append(f)
    total = len(tests)
    failed = [t for t in tests.values() if t["outcome"] in ("failed", "xpassed")]
    failed += [t for t in tests.values() if t["outcome"].startswith("error")]
    skipped = [t for t in tests.values() if t["outcome"] == "skipped"]
    known = [t for t in tests.values() if t["outcome"].startswith("xfailed")]
    wall = results.get("finished", time.time()) - results.get("started", time.time())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.get("started", 0)))
    out = [
        "# Reliability and security report",
        "",
        "Generated by `tests/reliability` (`.venv/bin/python -m pytest -m reliability "
        "tests/reliability --reliability-report docs/reliability.md`; `make soak` for the "
        "long run). Do not edit by hand.",
        "",
        f"- Run: {when}, {'soak' if results.get('soak') else 'CI length'}, wall time {wall:.0f} s",
        f"- Cases: {total} tests, {total - len(failed) - len(skipped) - len(known)} passed, "
        f"{len(failed)} failed, {len(known)} known defects not fixed (xfail), "
        f"{len(skipped)} skipped",
        "",
    ]
    out += ["## Defects found and fixed", "", "| defect | what happened | fix and guard |",
            "|---|---|---|"]  # fmt: skip
    out += [f"| {a} | {b} | {c} |" for a, b, c in FINDINGS]
    out += [
        "",
        "Latencies are measured by clients on the same 2-core machine as the sidecar "
        "(shared with other work): under load they are queueing time in one saturated "
        "Python process, compare them with the single-client figure beside them.",
        "",
    ]
    order = list(FAMILIES) + sorted(set(by_family) - set(FAMILIES))
    for mod in order:
        if mod not in by_family and mod not in figs:
            continue
        title, what = FAMILIES.get(mod, (mod, ""))
        rows = by_family.get(mod, [])
        bad = [r for r in rows if r["outcome"] != "passed"]
        out += [f"## {title}", "", what, ""]
        out.append(f"{len(rows)} cases, {len(rows) - len(bad)} passed.")
        out += ["", "| case | outcome | s | what it proves |", "|---|---|---|---|"]
        for r in rows:
            doc = " ".join(r["doc"].split()).replace("|", "\\|")
            out.append(f"| `{r['name']}` | {r['outcome']} | {r['duration']:.1f} | {doc} |")
        if bad:
            out += ["", "Failures and skips:", ""]
            for r in bad:
                msg = " ".join(str(r["message"]).split())
                out.append(f"- `{r['name']}`: {r['outcome']}: {msg}")
        if figs.get(mod):
            out += ["", "| figure | value | unit | note |", "|---|---|---|---|"]
            for f in figs[mod]:
                out.append(f"| {f['name']} | {_fmt(f['value'])} | {f['unit']} | {f['note']} |")
        out.append("")
    return "\n".join(out)


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
