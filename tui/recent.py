"""Recently used sidecar addresses, kept under $XDG_STATE_HOME/borescope.

Only addresses are stored, never tokens. The file is small (at most
``MAX_RECENT`` entries), written atomically, and a corrupt or unreadable file
counts as empty rather than stopping the app.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

MAX_RECENT = 12


def state_dir() -> Path:
    """$XDG_STATE_HOME/borescope (default ~/.local/state/borescope)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "borescope"


def _path() -> Path:
    return state_dir() / "recent.json"


def load() -> list[str]:
    """Recent addresses, most recent first ([] when none or unreadable)."""
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [a for a in data if isinstance(a, str) and a][:MAX_RECENT]


def remember(address: str) -> list[str]:
    """Move ``address`` to the front and save; returns the new list.

    A read-only home must not break the app: an OSError is ignored here
    (the list is then just not remembered).
    """
    entries = [address, *(a for a in load() if a != address)][:MAX_RECENT]
    d = state_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".recent.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        os.replace(tmp, _path())
    except OSError:
        pass
    return entries
