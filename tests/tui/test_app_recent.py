"""Recent targets: most recent first, bounded, never a token, a broken file is not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui import recent


def test_most_recent_first_without_duplicates_and_bounded() -> None:
    """Re-using a target moves it to the front; the list never exceeds MAX_RECENT."""
    for i in range(recent.MAX_RECENT + 5):
        recent.remember(f"10.0.0.{i}:7777")
    recent.remember("10.0.0.3:7777")
    got = recent.load()
    assert got[0] == "10.0.0.3:7777"
    assert len(got) == recent.MAX_RECENT and len(set(got)) == len(got)


def test_stored_under_xdg_state_home_as_addresses_only() -> None:
    """The file lives under $XDG_STATE_HOME/borescope and holds plain addresses."""
    recent.remember("127.0.0.1:7777")
    path = recent.state_dir() / "recent.json"
    assert json.loads(path.read_text()) == ["127.0.0.1:7777"]


def test_corrupt_or_foreign_file_reads_as_empty() -> None:
    """A corrupt file, or one of the wrong shape, is an empty list, and is repaired on save."""
    d = recent.state_dir()
    d.mkdir(parents=True)
    (d / "recent.json").write_text("{not json")
    assert recent.load() == []
    (d / "recent.json").write_text('{"a": 1}')
    assert recent.load() == []
    assert recent.remember("h:1") == ["h:1"]


def test_unwritable_state_dir_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state directory that cannot be created: remember() still returns, nothing raised."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    assert recent.remember("h:1") == ["h:1"]
    assert recent.load() == []
