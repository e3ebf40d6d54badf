"""The plain ``serve`` command line, parsed without argparse.

argparse, and what it imports while building a parser (gettext, shutil and
through it bz2 and lzma with their C libraries), stay resident for the pod's
life: ~0.7 MiB of a sidecar that idles at ~45 MiB (benchmarks/bench_idle). The
pod always starts ``serve`` with a few well-formed options, so those are read
here; anything else (``--help``, ``token``, an unknown or abbreviated option, a
missing value) returns None and ``sidecar.__main__`` hands the line to
argparse, which stays the reference for help and error messages. A test checks
both agree on every line this accepts.
"""

from __future__ import annotations

from types import SimpleNamespace

#: option -> destination; each takes one value (``--opt V`` or ``--opt=V``).
_VALUED = {"--listen": "listen", "--config": "config", "--set": "set"}


def parse_serve(argv: list[str]) -> SimpleNamespace | None:
    """``serve [--listen A] [--config F] [--set K=V]... [--console-logs]``, or None."""
    if not argv or argv[0] != "serve":
        return None
    out = SimpleNamespace(command="serve", listen=None, config=None, set=[], console_logs=False)
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--console-logs":
            out.console_logs = True
            continue
        opt, eq, value = arg.partition("=")
        dest = _VALUED.get(opt)
        if dest is None:
            return None  # help, unknown, abbreviated, positional: argparse's job
        if not eq:
            value = next(rest, "")
            if not value or value.startswith("-"):
                return None  # argparse reports the missing value
        if dest == "set":
            out.set.append(value)
        else:
            setattr(out, dest, value)
    return out
