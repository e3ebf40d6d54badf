"""``borescope tui --addr HOST:PORT``: open the TUI on one sidecar.

The handshake (connect, GetInfo, contract version) happens before the
terminal is taken over, so an unreachable, malformed or incompatible
address is one line on stderr and exit code 2, never a blank screen.
"""

from __future__ import annotations

import argparse
from typing import Any

from protos import info_pb2
from tui.cli.common import EXIT_USAGE, CliError, add_connection_args, forwarded_target
from tui.client import Client, ConnectError, Target

CONNECT_TIMEOUT_S = 5.0


def handshake(
    target: Target, timeout: float = CONNECT_TIMEOUT_S
) -> tuple[Client, info_pb2.GetInfoResponse]:
    """A connected client and its GetInfo, or CliError (exit 2) saying why not."""
    from tui.connection import CHANNEL_OPTIONS, IncompatibleSidecar, first_contact

    client = Client(target, options=CHANNEL_OPTIONS)
    try:
        info = first_contact(client, timeout)
    except (ConnectError, IncompatibleSidecar) as e:
        client.close()
        raise CliError(str(e), EXIT_USAGE) from None
    return client, info


def launch(
    target: Target, timeout: float = CONNECT_TIMEOUT_S, kube_pod: tuple[Any, Any] | None = None
) -> int:
    """Handshake, then run the app until the user quits; returns the exit code.

    Other commands (``demo``, ``attach``) call this once they have a target.
    ``kube_pod`` (cluster, pod): the target was reached through Kubernetes;
    the home screen also reads the app's stdout through the API.
    """
    from tui import recent
    from tui.app import make_app

    client, info = handshake(target, timeout)
    recent.remember(target.address)
    try:
        app = make_app(client, info=info, kube_pod=kube_pod)
        rc = app.run()
    finally:
        client.close()
    return int(rc or 0)


def run(args: argparse.Namespace) -> int:
    from tui.fleet.launch import fleet_of, launch_fleet  # several sidecars: the Fleet screen

    if (fleet := fleet_of(args)) is not None:
        return launch_fleet(args, fleet, min(args.timeout, CONNECT_TIMEOUT_S))
    # --addr as given, or pod/NAME, deploy/NAME, -l through a port-forward kept
    # up for as long as the app runs.
    pods: list[tuple[Any, Any]] = []
    with forwarded_target(args, on_kube=lambda c: pods.append((c.cluster, c.pod))) as target:  # type: ignore[attr-defined]
        return launch(target, min(args.timeout, CONNECT_TIMEOUT_S), pods[0] if pods else None)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds ``borescope tui``."""
    p = sub.add_parser(
        "tui",
        help="open the terminal UI on a sidecar",
        description="Open the terminal UI. Keys: ? help, ctrl+p palette, 1-6 screens, q quit.",
    )
    add_connection_args(p)
    p.set_defaults(func=run)
