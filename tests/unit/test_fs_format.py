"""Client-side formatting of file data: modes, sizes, ages, previews, hex dumps."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.syntax import Syntax

from protos import files_pb2
from tui.widgets.file_format import display_name, mode_string, parse_age, parse_size
from tui.widgets.file_preview import hex_dump, info_line, is_binary, render_preview


def render(obj: object) -> str:
    console = Console(width=100, record=True, color_system=None)
    console.print(obj)
    return console.export_text()


def test_mode_string_like_ls() -> None:
    """Type letter plus rwx bits, setuid and sticky included."""
    f = files_pb2.FileInfo(type=files_pb2.FILE_TYPE_REGULAR, mode=0o4755)
    assert mode_string(f) == "-rwsr-xr-x"
    d = files_pb2.FileInfo(type=files_pb2.FILE_TYPE_DIRECTORY, mode=0o1777)
    assert mode_string(d) == "drwxrwxrwt"
    assert mode_string(files_pb2.FileInfo(type=files_pb2.FILE_TYPE_FIFO, mode=0o600))[0] == "p"


def test_display_name_escapes_and_shows_link() -> None:
    """Escape sequences in names and link targets come out as visible text."""
    e = files_pb2.FileInfo(
        raw_name=b"\x1b[31mx", type=files_pb2.FILE_TYPE_SYMLINK, symlink_target="/a\nb"
    )
    assert display_name(e) == "\\x1b[31mx -> /a\\nb"


def test_sizes_and_ages() -> None:
    """Human sizes and durations parse; nonsense is a ValueError naming the input."""
    assert parse_size("4096") == 4096 and parse_size("10K") == 10240
    assert parse_size("1.5G") == 3 << 29 and parse_size("2MiB") == 2 << 20
    assert parse_age("90s") == 90 and parse_age("2h") == 7200 and parse_age("1d") == 86400
    for bad in ("ten", "-1", "1.2.3"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)
    for bad in ("5x", "h", "-1m"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_age(bad)


def test_binary_detection_and_hex() -> None:
    """NUL bytes mean binary (shown as hex); UTF-8 cut mid-character is still text."""
    assert is_binary(b"abc\0def")
    assert not is_binary("héllo".encode() * 1000)
    assert not is_binary(("é" * 5000).encode()[:8191])
    assert hex_dump(b"AB\x00\x1b", 16) == "00000010  41 42 00 1b" + " " * 36 + "  AB.."


def test_preview_highlights_by_extension_and_notes_the_cap() -> None:
    """A .py file gets the Python lexer; a capped preview says how much is shown."""
    body = render_preview("/app/main.py", b"def f():\n    return 1\n", 22)
    assert isinstance(body, Syntax) and body.lexer is not None
    assert "python" in str(body.lexer).lower()
    text = render(render_preview("/var/log/app.log", b"x" * 100, 10 << 20))
    assert "showing the first 100 of 10.0M" in text
    hexed = render(render_preview("/sparse", b"\0" * 64, 10 << 30))
    assert "binary" in hexed and "of 10.0G" in hexed and "00000008  00 00" in hexed


def test_preview_never_passes_escapes() -> None:
    """Terminal escapes inside a previewed file are shown escaped, never emitted."""
    text = render(render_preview("/x.txt", b"a\x1b]52;c;Zm9v\x07b\r\n", 16))
    assert "\x1b" not in text and "\\x1b]52" in text


def test_info_line_mentions_refusal_and_sparseness() -> None:
    """The metadata line says why a read would be refused and flags sparse files."""
    info = files_pb2.FileInfo(
        name="token",
        type=files_pb2.FILE_TYPE_REGULAR,
        mode=0o644,
        size=10 << 30,
        allocated=0,
        denied_reason="service-account token mount (config allow_sensitive_paths)",
    )
    line = info_line(info).plain
    assert "sparse" in line and "allow_sensitive_paths" in line


def test_info_line_flags_an_allowed_sensitive_read() -> None:
    """When config allows a token read, the line still says which mount it is on."""
    info = files_pb2.FileInfo(name="token", type=files_pb2.FILE_TYPE_REGULAR, sensitive="secret")
    assert "on a secret mount (reads audited)" in info_line(info).plain
