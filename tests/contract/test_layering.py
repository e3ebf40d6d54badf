"""DESIGN.md's layering: agent never imports grpc/textual/kubernetes; tui never imports agent.

Each module is imported in a fresh interpreter and sys.modules is inspected,
so an indirect import (through another package) is caught too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules(package: str) -> list[str]:
    out = []
    for p in sorted((ROOT / package).rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__":
            continue
        out.append(".".join(parts))
    return out


def imported_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, f"importing {module} failed:\n{res.stderr[-2000:]}"
    return {m.split(".")[0] for m in res.stdout.split()}


@pytest.mark.parametrize("module", modules("agent"))
def test_agent_never_imports_rpc_ui_or_kubernetes(module: str) -> None:
    """No agent module pulls in grpc, textual or kubernetes."""
    bad = imported_by(module) & {"grpc", "textual", "kubernetes"}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", modules("tui"))
def test_tui_never_imports_agent(module: str) -> None:
    """No tui module pulls in agent (tui speaks gRPC only)."""
    assert "agent" not in imported_by(module), f"{module} imports agent"
