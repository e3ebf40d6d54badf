"""The Fleet screen against real sandbox pods: one row per pod, errors in place, Enter drills in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.fleet.conftest import Fleet
from tui.app import make_app
from tui.client import Client, Target
from tui.fleet.launch import FLEET_MODE, add_fleet_mode
from tui.fleet.members import Fleet as FleetMembers
from tui.fleet.members import Member
from tui.screens.fleet import COLUMNS, FleetScreen


@pytest.fixture(autouse=True)
def _state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the recent-targets file out of the user's home; no animations."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")


def _members(fleet: Fleet) -> FleetMembers:
    ms = [Member(a, Target(a, fleet.token)) for a in fleet.good.addresses]
    ms.append(Member(fleet.dead, Target(fleet.dead, fleet.token)))
    ms.append(Member("web-pending", error="pod is Pending"))
    return FleetMembers(ms)


async def _wait(cond: object, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_fleet_screen_rows_and_drill_down(fleet: Fleet) -> None:
    """The app opens on the Fleet screen: a row per pod with cpu, rss, restarts, error rate and
    connections for each answering pod, the dead and the pending pod's reason in their rows;
    Enter on the second pod switches the app's target to it and shows its screens; 0 returns."""
    members = _members(fleet)
    first = Client(Target(fleet.good.addresses[0], fleet.token))
    app = make_app(first)
    add_fleet_mode(app, members)
    async with app.run_test(size=(140, 40)) as pilot:
        await _wait(lambda: isinstance(app.screen, FleetScreen))
        table = app.screen.query_one(DataTable)

        def cells(key: str) -> dict[str, str]:
            return {c: str(table.get_cell(key, c)) for c in COLUMNS}

        await _wait(lambda: all(cells(a)["STATE"] == "ok" for a in fleet.good.addresses))
        await _wait(lambda: "unavailable" in cells(fleet.dead)["STATE"])
        assert table.row_count == 5
        for a in fleet.good.addresses:
            row = cells(a)
            assert row["RESTARTS"].isdigit()
            assert row["ERR/MIN"].lstrip("≥").isdigit()
            assert row["CONNS"].isdigit()
            assert row["RSS"] == "?" or row["RSS"][-1] in "BKMG"
        assert cells("web-pending")["STATE"] == "pod is Pending"
        # The demo app logs an error on its /error self-call every few seconds; our own
        # channel to each sidecar is an established connection in that pod.
        await _wait(
            lambda: any(int(cells(a)["ERR/MIN"].lstrip("≥")) > 0 for a in fleet.good.addresses)
        )
        assert all(int(cells(a)["CONNS"]) >= 1 for a in fleet.good.addresses)
        table.move_cursor(row=1)
        await pilot.press("enter")
        await _wait(lambda: app.client.target.address == fleet.good.addresses[1])
        await _wait(lambda: app.current_mode not in (FLEET_MODE, "_switching"))
        await pilot.press("0")
        await _wait(lambda: app.current_mode == FLEET_MODE)


def test_tui_over_a_fleet_where_no_pod_answers_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`borescope tui --addr A,B` with nothing listening at either: exit 2 and one line naming
    the pods and why, before the terminal is taken over."""
    from tests.fleet.conftest import dead_address
    from tui.cli.main import main as cli_main

    a, b = dead_address(), dead_address()
    rc = cli_main(["tui", "--addr", f"{a},{b}", "--timeout", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("borescope: no pod of the fleet answers: ")
    assert a in err and b in err
    assert len(err.strip().splitlines()) == 1
