"""The reliability suite's plumbing: the ``reliability`` marker, ``--soak``, figures, report.

Every test under ``tests/reliability`` is marked ``reliability``. ``--soak`` (or
``BORESCOPE_SOAK=1``) scales durations and counts up for ``make soak``; CI runs
the short version. Tests record measured figures with the ``figures`` fixture;
``--reliability-report PATH`` writes the Markdown report (see ``report.py``)
from the outcomes and figures of the run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import report

_RESULTS: dict[str, Any] = {
    "tests": {},
    "figures": [],
    "started": time.time(),
    "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
    f"Python {platform.python_version()}",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability")
    group.addoption(
        "--soak", action="store_true", default=False, help="long reliability runs (make soak)"
    )
    group.addoption(
        "--reliability-report",
        default="",
        help="write the reliability report (Markdown) to this path after the run",
    )


def soak_enabled(config: pytest.Config) -> bool:
    """True for the long run: ``--soak`` or BORESCOPE_SOAK=1."""
    return bool(config.getoption("soak", False)) or os.environ.get("BORESCOPE_SOAK") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config) -> bool:
    """True when the run is the long soak (durations scaled up)."""
    return soak_enabled(pytestconfig)


class Figures:
    """Collects measured figures for the report: ``figures.add(family, name, value, unit)``."""

    def add(
        self, family: str, name: str, value: float | str, unit: str = "", note: str = ""
    ) -> None:
        _RESULTS["figures"].append(
            {"family": family, "name": name, "value": value, "unit": unit, "note": note}
        )


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """Where tests put the figures they measure (latency, RSS, fds, counts)."""
    yield Figures()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()
    here = Path(__file__).parent
    if here not in Path(str(item.fspath)).parents:
        return
    entry = _RESULTS["tests"].setdefault(
        item.nodeid,
        {
            "module": Path(str(item.fspath)).stem,
            "name": item.name,
            "doc": (getattr(item, "obj", None).__doc__ or "").strip().split("\n\n")[0]
            if getattr(item, "obj", None) is not None
            else "",
            "outcome": "passed",
            "duration": 0.0,
            "message": "",
        },
    )
    entry["duration"] += rep.duration
    if hasattr(rep, "wasxfail"):
        entry["outcome"] = "xfailed (known, not fixed)" if rep.skipped else "xpassed"
        entry["message"] = str(rep.wasxfail)[:300]
    elif rep.failed:
        entry["outcome"] = "failed" if rep.when == "call" else f"error ({rep.when})"
        entry["message"] = str(
            rep.longrepr.reprcrash.message if hasattr(rep.longrepr, "reprcrash") else rep.longrepr
        )[:300]  # type: ignore[union-attr]
    elif rep.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["message"] = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _RESULTS["tests"]:
        return
    _RESULTS["finished"] = time.time()
    _RESULTS["soak"] = soak_enabled(session.config)
    _RESULTS["commit"] = _commit(Path(str(session.config.rootpath)))
    out = session.config.getoption("reliability_report", "")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report.render(_RESULTS))
    cache = Path(str(session.config.rootpath)) / ".pytest_cache"
    cache.mkdir(exist_ok=True)
    (cache / "reliability.json").write_text(json.dumps(_RESULTS, indent=1, default=str))


def _commit(root: Path) -> str:
    """The tested commit, and whether the tree differed from it ("" outside git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + (" with uncommitted changes" if dirty else "")
