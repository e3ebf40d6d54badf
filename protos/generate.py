"""Regenerate the Python modules from the .proto files in this folder.

Run from anywhere: ``python -m protos.generate``. The generated modules are
committed; ``tests/contract/test_generated.py`` regenerates them into a temp
dir and fails on any drift.
"""

from __future__ import annotations

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"


def proto_files() -> list[pathlib.Path]:
    """Every .proto of the contract, in a stable order."""
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_dir: pathlib.Path) -> None:
    """Compile every .proto into ``out_dir/protos/`` (messages, stubs, type stubs)."""
    import importlib.resources

    from grpc_tools import protoc  # dev-only dependency

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    # protoc finds the mypy plugins on PATH: use the ones next to this interpreter.
    bindir = str(pathlib.Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p.relative_to(ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(ROOT)
    sys.exit(0)
