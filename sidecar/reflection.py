"""gRPC server reflection, loaded on its first call.

``grpc_reflection`` pulls in ``descriptor_pb2`` and ``grpc.experimental.aio``
(~0.8 MiB RSS). With ``reflection=true`` the service is served from the start,
but through this handler, which imports it only when a client first asks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc

#: ``grpc_reflection.v1alpha.reflection.SERVICE_NAME``, without importing it.
SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"
_METHOD = f"/{SERVICE_NAME}/ServerReflectionInfo"

if TYPE_CHECKING:
    _Handler = grpc.GenericRpcHandler[Any, Any]  # generic in the stubs only
else:
    _Handler = grpc.GenericRpcHandler


class LazyReflection(_Handler):
    """Serves ``grpc.reflection.v1alpha.ServerReflection``, importing it on first use."""

    def __init__(self, service_names: Sequence[str]) -> None:
        self._names = tuple(service_names)
        self._lock = threading.Lock()
        self._handler: grpc.RpcMethodHandler[Any, Any] | None = None

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if handler_call_details.method != _METHOD:
            return None
        with self._lock:
            if self._handler is None:
                self._handler = _load(self._names)
        return self._handler


def _load(names: tuple[str, ...]) -> grpc.RpcMethodHandler[Any, Any]:
    from grpc_reflection.v1alpha import reflection, reflection_pb2

    servicer = reflection.ReflectionServicer(names)
    return grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
