"""``borescope`` / ``kubectl borescope``: the entry point.

Errors print as one line on stderr with a non-zero exit code; a traceback
never reaches the user. Exit codes: 0 ok, 1 the sidecar refused or failed,
2 usage or connection problem, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tui.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, CliError
from tui.cli.serve import PASSTHROUGH, exec_sidecar

#: Command modules under tui.cli; each has register(subparsers).
COMMANDS = ("serve", "info", "ps", "files", "net", "logs", "tui_cmd", "demo", "kube")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line and exit 2, like every other usage problem.
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="borescope",
        description="Look inside shell-less containers. Run 'borescope demo' to try it.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"tui.cli.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list and args_list[0] in PASSTHROUGH:
        return exec_sidecar(args_list)
    try:
        args = build_parser().parse_args(args_list)
        rc: int = args.func(args)
        return rc
    except CliError as e:
        print(f"borescope: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("borescope: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `borescope logs | head`: the reader left; not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
