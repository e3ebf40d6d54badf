"""Run every ``benchmarks/bench_*.py`` and print each figure beside its anchor.

Usage: ``python -m benchmarks.run [--quick] [NAME ...]``. Each benchmark is a
module with ``main(argv) -> int`` (or ``main() -> int``) that prints lines of
the form ``name: value | anchor: value | ratio: X (goal: ...)``. A benchmark
that fails is reported and the others still run; the exit code is non-zero if
any failed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent


def discover() -> list[str]:
    """Module names of every benchmark, sorted."""
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def run_one(name: str, quick: bool) -> bool:
    module = importlib.import_module(f"benchmarks.{name}")
    main = module.main
    argv = ["--quick"] if quick else []
    print(f"== {name} ==", flush=True)
    start = time.monotonic()
    try:
        params = inspect.signature(main).parameters
        rc = main(argv) if params else main()
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except Exception:
        traceback.print_exc()
        rc = 1
    print(
        f"-- {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.monotonic() - start:.1f}s\n"
    )
    return rc == 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs (smoke)")
    p.add_argument("names", nargs="*", help="only these (e.g. bench_ps)")
    args = p.parse_args(argv)
    names = args.names or discover()
    failed = [n for n in names if not run_one(n.removesuffix(".py"), args.quick)]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
