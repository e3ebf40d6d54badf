"""Wrap a gRPC method handler's behaviour, for all four RPC kinds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    InterceptorBase = grpc.ServerInterceptor[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Handler | None]
else:
    InterceptorBase = grpc.ServerInterceptor
    Handler = Continuation = Any

Behavior = Callable[[Any, grpc.ServicerContext], Any]
StreamBehavior = Callable[[Any, grpc.ServicerContext], Iterator[Any]]


def wrap_handler(
    handler: Handler | None,
    unary: Callable[[Behavior], Behavior],
    stream: Callable[[StreamBehavior], StreamBehavior],
    *,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler | None:
    """A copy of ``handler`` whose behaviour is wrapped.

    ``unary`` wraps behaviours that return one response (unary-unary,
    stream-unary); ``stream`` wraps those that yield responses (unary-stream,
    stream-stream). The request argument is a message or an iterator of them.
    ``request_deserializer``, when given, replaces the handler's.
    """
    if handler is None:
        return None
    des, ser = handler.request_deserializer, handler.response_serializer
    des = request_deserializer or des
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), des, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream), des, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), des, ser)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream), des, ser)
    return handler


def method_kind(handler: Handler | None) -> str:
    """ "unary_unary", "unary_stream", "stream_unary" or "stream_stream"."""
    if handler is None:
        return "unknown"
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        if getattr(handler, kind):
            return kind
    return "unknown"
