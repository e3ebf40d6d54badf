"""The ``borescope`` command line: one module per command group.

Each module exposes ``register(subparsers)`` which adds its commands and sets
``func(args) -> int`` on each parser.
"""
