"""One thin servicer per service; each module has ``register(server, deps)``.

A servicer method maps the request to an agent call and the result to a
message through ``sidecar.convert``; nothing more.

Only Events (it owns the recorder, which samples from start-up) is registered
at once. Every other service is served from the start too, through a
``LazyService`` handler that imports its module, its protos and the agent
modules behind it, and builds the servicer, on the service's first call: an
idle sidecar does not hold what nobody has asked for (see benchmarks/bench_idle).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog

from sidecar.deps import Deps

log = structlog.get_logger()

#: Service module -> the full service names it registers (its SERVICE_NAMES; a
#: test checks they agree), in registration order.
SERVICES: dict[str, tuple[str, ...]] = {
    "info": ("borescope.v1.Info",),
    "processes": ("borescope.v1.Processes",),
    "files": ("borescope.v1.Files",),
    "network": ("borescope.v1.Network",),
    "logs": ("borescope.v1.Logs",),
    "events": ("borescope.v1.Events",),
}
MODULES = tuple(SERVICES)
#: Registered at start-up, not on first call.
EAGER = frozenset({"events"})

if TYPE_CHECKING:
    _Handler = grpc.GenericRpcHandler[Any, Any]  # generic in the stubs only
    _MethodHandler = grpc.RpcMethodHandler[Any, Any]
else:
    _Handler = grpc.GenericRpcHandler
    _MethodHandler = grpc.RpcMethodHandler


class _Collector:
    """Stands in for the server while a module's ``register`` adds its handlers."""

    def __init__(self) -> None:
        self.handlers: list[_Handler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[_Handler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, _service: str, _handlers: object) -> None:
        """The same methods as the generic handler; serving that one is enough."""


class LazyService(_Handler):
    """Serves a service module's methods, importing and registering it on first call."""

    def __init__(self, module: str, names: Sequence[str], deps: Deps) -> None:
        self.module = module
        self._prefixes = tuple(f"/{n}/" for n in names)
        self._deps = deps
        self._lock = threading.Lock()
        self._handlers: tuple[_Handler, ...] | None = None

    @property
    def loaded(self) -> bool:
        return self._handlers is not None

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> _MethodHandler | None:
        if not handler_call_details.method.startswith(self._prefixes):
            return None
        handlers = self._handlers
        if handlers is None:
            handlers = self._load()
        for h in handlers:
            found = h.service(handler_call_details)
            if found is not None:
                return found
        return None  # a method this service does not have: UNIMPLEMENTED

    def _load(self) -> tuple[_Handler, ...]:
        with self._lock:
            if self._handlers is None:
                module = importlib.import_module(f"sidecar.services.{self.module}")
                collector = _Collector()
                module.register(cast(grpc.Server, collector), self._deps)
                self._handlers = tuple(collector.handlers)
                log.debug("service loaded on first call", service=self.module)
            return self._handlers


def register_all(server: grpc.Server, deps: Deps) -> list[str]:
    """Register every servicer (most lazily); return the full service names served."""
    names: list[str] = []
    for mod, served in SERVICES.items():
        if mod in EAGER:
            importlib.import_module(f"sidecar.services.{mod}").register(server, deps)
        else:
            server.add_generic_rpc_handlers((LazyService(mod, served, deps),))
        names.extend(served)
    return names
