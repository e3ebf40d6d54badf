"""``borescope serve``: exec the sidecar (``python -m sidecar serve``).

The sidecar runs in its own interpreter image; exec keeps this process's pid
(so signals from the container runtime reach the server) and keeps ``tui``
free of any import of the agent.
"""

from __future__ import annotations

import argparse
import os
import sys

#: Commands handed to ``python -m sidecar`` untouched (before argparse sees them,
#: so their own flags such as ``--set k=v`` pass through).
PASSTHROUGH = {
    "serve": "run the sidecar gRPC server (in the pod); see 'borescope serve --help'",
    "token": "print a new bearer token and the SHA-256 the sidecar is given",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """List the pass-through commands in --help (main() execs them before parsing)."""
    for name, text in PASSTHROUGH.items():
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=lambda args, name=name: exec_sidecar([name, *args.rest]))


def exec_sidecar(argv: list[str]) -> int:
    """Replace this process with ``python -m sidecar ARGV...``."""
    os.execv(sys.executable, [sys.executable, "-m", "sidecar", *argv])
    return 0  # not reached
