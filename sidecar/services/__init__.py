"""One thin servicer per service; each module has ``register(server, deps)``.

A servicer method maps the request to an agent call and the result to a
message through ``sidecar.convert``; nothing more.
"""

from __future__ import annotations

import importlib

import grpc

from sidecar.deps import Deps

#: Service modules, in registration order. Each exposes register() and SERVICE_NAMES.
MODULES = ("info", "processes", "files", "network", "logs", "events")


def register_all(server: grpc.Server, deps: Deps) -> list[str]:
    """Register every servicer; return the full service names registered."""
    names: list[str] = []
    for mod in MODULES:
        module = importlib.import_module(f"sidecar.services.{mod}")
        module.register(server, deps)
        names.extend(module.SERVICE_NAMES)
    return names
