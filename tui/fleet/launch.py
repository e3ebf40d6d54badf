"""``borescope tui`` over a fleet: the app opens on the Fleet screen.

The app needs one connected target for its other screens; it starts on the
first pod that answers the handshake (the header names it), and Enter on the
Fleet screen switches to another. ``0`` returns to the Fleet screen.
"""

from __future__ import annotations

import argparse

from tui.cli.common import EXIT_USAGE, CliError
from tui.client import Client, ConnectError
from tui.fleet.members import Fleet, FleetError, resolve_fleet

FLEET_MODE = "fleet"


def fleet_of(args: argparse.Namespace) -> Fleet | None:
    """The fleet ``args`` name, or None for one sidecar (CliError on bad flags)."""
    try:
        return resolve_fleet(args)
    except FleetError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def add_fleet_mode(app: object, fleet: Fleet) -> None:
    """Give ``app`` (a BorescopeApp) the Fleet screen as a mode, on key 0, opened first."""
    from tui.screens.fleet import FleetScreen

    app.add_mode(FLEET_MODE, lambda: FleetScreen(fleet))  # type: ignore[attr-defined]
    app.bind("0", f"switch_mode('{FLEET_MODE}')", description="Fleet")  # type: ignore[attr-defined]
    app.home_mode = FLEET_MODE  # type: ignore[attr-defined]


def launch_fleet(args: argparse.Namespace, fleet: Fleet, timeout: float) -> int:
    """Handshake with the first pod that answers, then run the app on the Fleet screen."""
    from tui.app import make_app
    from tui.connection import IncompatibleSidecar, first_contact

    reasons: list[str] = []
    client: Client | None = None
    try:
        for member in fleet.members:
            if member.error:
                continue
            try:
                client = fleet.open(member)
                info = first_contact(client, timeout)
                break
            except (ConnectError, IncompatibleSidecar) as e:
                reasons.append(f"{member.name}: {e}")
                if client is not None:
                    client.close()
                client = None
        if client is None:
            raise CliError("no pod of the fleet answers: " + "; ".join(reasons[:3]), EXIT_USAGE)
        app = make_app(client, info=info)
        add_fleet_mode(app, fleet)
        return int(app.run() or 0)
    finally:
        if client is not None:
            client.close()
        fleet.close()
