"""Human-readable units shared by the CLI and the screens."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1536 -> '1.5K' (binary units, like ls -h)."""
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"
