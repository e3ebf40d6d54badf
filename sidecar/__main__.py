"""``python -m sidecar serve``: the process that runs in the pod.

``borescope serve`` execs this, so the CLI (in ``tui``) never imports the agent.
``python -m sidecar token`` makes a new bearer token and the hash to configure.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING

from sidecar.argv import parse_serve
from sidecar.config import Config, ConfigError, from_env, from_file, from_mapping

if TYPE_CHECKING:
    import argparse


def parse_args(argv: list[str]) -> argparse.Namespace | SimpleNamespace:
    """The command line; the pod's plain ``serve`` line without importing argparse."""
    return parse_serve(argv) or parse_with_argparse(argv)


def parse_with_argparse(argv: list[str]) -> argparse.Namespace:
    """The reference parser: help, ``token``, errors (exit 2 with argparse's message)."""
    import argparse

    p = argparse.ArgumentParser(prog="borescope serve", description="Run the borescope sidecar.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve gRPC in the pod")
    s.add_argument("--listen", help="address (default 127.0.0.1:7777)")
    s.add_argument("--config", help="TOML or JSON config file")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key (repeatable), e.g. --set allow_signals=true",
    )
    s.add_argument("--console-logs", action="store_true", help="human-readable logs")
    t = sub.add_parser(
        "token",
        help="print a new random token and its SHA-256 (give the hash to the sidecar, "
        "keep the token for the client)",
    )
    t.add_argument("--hash-stdin", action="store_true", help="hash a token read from stdin instead")
    return p.parse_args(argv)


def load_config(args: argparse.Namespace | SimpleNamespace) -> Config:
    """defaults < file < BORESCOPE_* env < flags."""
    cfg = Config()
    if args.config:
        cfg = from_file(args.config, cfg)
    cfg = from_env(base=cfg)
    flags: dict[str, str] = {}
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        flags[k.strip()] = v
    if args.listen:
        flags["listen"] = args.listen
    return from_mapping(flags, cfg)


def token_command(args: argparse.Namespace | SimpleNamespace) -> int:
    """Print ``token`` and ``sha256`` lines (or just the hash of stdin)."""
    import hashlib
    import secrets  # lazy: random, bisect... are not needed by ``serve``

    if args.hash_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            print("borescope token: no token on stdin", file=sys.stderr)
            return 2
        print(hashlib.sha256(token.encode()).hexdigest())
        return 0
    token = secrets.token_urlsafe(32)
    print(f"token:  {token}")
    print(f"sha256: {hashlib.sha256(token.encode()).hexdigest()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "token":
        return token_command(args)
    # structlog.dev imports rich (installed for the TUI) for pretty console
    # tracebacks the sidecar never renders: keeping it out saves ~5 MiB RSS per pod.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    from sidecar.server import make_undumpable

    # Before anything reads config or secrets: from here on the app (same UID,
    # same PID namespace) cannot read our environ or memory.
    make_undumpable()
    from sidecar.logconfig import configure_logging

    configure_logging(json_output=False if args.console_logs else None)
    try:
        config = load_config(args)
    except ConfigError as e:
        print(f"borescope serve: {e}", file=sys.stderr)
        return 2
    from sidecar.server import serve

    try:
        return serve(config)
    except (RuntimeError, ConfigError) as e:
        print(f"borescope serve: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
