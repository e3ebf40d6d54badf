"""Strings from the target cannot drive the terminal: they are shown escaped."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text
from textual.content import Content

from tui.sanitize import sanitize, sanitize_bytes, sanitize_markup

HOSTILE = "ok \x1b]52;c;cm0gLXJmIC8=\x07 done\rFAKE PROMPT $ \x9b31m red \x85 nel \x1b[2J"


def test_osc52_bare_cr_and_c1_render_escaped() -> None:
    """The issue's case: OSC 52 (clipboard write), a bare \\r and C1 bytes come out as
    visible text, with no control character left."""
    out = sanitize(HOSTILE)
    assert "\\x1b]52;c;cm0gLXJmIC8=\\x07" in out
    assert "\\rFAKE PROMPT" in out
    assert "\\x9b31m" in out and "\\x85" in out and "\\x1b[2J" in out
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)


def test_tab_kept_newline_only_on_request() -> None:
    """TAB is harmless and kept; \\n is escaped unless the caller keeps lines (previews),
    and even then a \\r before \\n stays escaped."""
    assert sanitize("a\tb") == "a\tb"
    assert sanitize("a\nb") == "a\\nb"
    assert sanitize("a\r\nb", keep_newlines=True) == "a\\r\nb"


def test_bidi_and_line_separators_escaped() -> None:
    """Bidi overrides and U+2028/2029 ("Trojan Source") cannot reorder or break a line."""
    assert sanitize("x\u202eevil\u2066y\u2028z") == "x\\u202eevil\\u2066y\\u2028z"


def test_raw_c1_bytes_never_reach_the_terminal() -> None:
    """Raw bytes: 0x9b (8-bit CSI) is invalid UTF-8 alone, so it becomes U+FFFD, never CSI."""
    out = sanitize_bytes(b"a\x9b31mb\x1b[0m")
    assert "\x9b" not in out and "\x1b" not in out and "\\x1b[0m" in out


def test_markup_cannot_style_or_bind_actions() -> None:
    """In Textual markup, target text shows literally: no [@click=...] action, no styles."""
    for evil in ("[@click=app.quit]x[/]", "[bold red]y", "[$accent]z", "a\\[b]c", "end\\"):
        content = Content.from_markup(sanitize_markup(evil))
        assert content.plain == sanitize(evil)
        assert not content.spans


def test_rendered_output_contains_no_escape_bytes() -> None:
    """Through a real terminal renderer, the hostile line produces no ESC/BEL/C1 of its own."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, color_system=None, width=200)
    console.print(Text(sanitize(HOSTILE)))
    written = buf.getvalue()
    assert "\x1b" not in written and "\x07" not in written and "\x9b" not in written


@given(st.text())
def test_no_control_character_survives(s: str) -> None:
    """For any text, the result has no C0 (except TAB), DEL, C1 or bidi control left."""
    out = sanitize(s)
    for c in out:
        o = ord(c)
        assert c == "\t" or not (o < 0x20 or 0x7F <= o <= 0x9F)
        assert not (0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069 or o in (0x2028, 0x2029))
