"""Client-side name safety of downloads (``borescope cp``): no root or sidecar needed."""

from __future__ import annotations

import pytest

from tui.transfer import TransferError, remote_basename, safe_local_name


@pytest.mark.parametrize(
    "name",
    [
        b"",
        b".",
        b"..",
        b"../../etc/passwd",
        b"/etc/passwd",
        b"a/b",
        b"x\x00y",
        b"new\nline",
        b"\x1b[31mred\x1b[0m",
        b"\x1b]52;c;cGF5bG9hZA==\x07",
        b"bad-utf8-\xff",
        b"a" * 300,
    ],
)
def test_hostile_remote_names_are_refused(name: bytes) -> None:
    """Names that could leave the destination or drive a terminal are refused, with a reason."""
    with pytest.raises(TransferError) as ei:
        safe_local_name(name)
    assert "\x1b" not in str(ei.value) and "\n" not in str(ei.value)


def test_plain_names_pass() -> None:
    """Ordinary names (spaces and non-ASCII included) are kept as they are."""
    for name in ("app.log", "  spaces  ", "données.json", ".hidden"):
        assert safe_local_name(name) == name


def test_remote_basename() -> None:
    """Only the last component of the remote path is ever used locally."""
    assert remote_basename("/var/log/app.log") == b"app.log"
    assert remote_basename("/var/log/") == b"log"
    assert remote_basename("/a/..") == b".."
