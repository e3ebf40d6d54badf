"""Typed results of the agent: frozen dataclasses, one module per concern.

The sidecar converts these to protobuf in ``sidecar/convert``; nothing else
builds messages.
"""
