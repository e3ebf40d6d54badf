"""Make strings from the target safe to show on a terminal.

A hostile file name or log line must not move the cursor, change colours,
set the window title, or write the clipboard (OSC 52). Every C0 control
except tab, DEL, every C1 control, and a bare carriage return are shown as
visible escapes (``\\x1b``, ``\\r``, ``\\x9b``) instead. Unicode line and
paragraph separators and bidi overrides are escaped too: they reorder or
break lines on screen (the "Trojan Source" trick).

Where text is put into Textual *markup* (``Static("...")``, notify), square
brackets are markup: ``[@click=app.quit]`` in a file name would become a
clickable action. Use :func:`sanitize_markup` there, or pass a
``rich.text.Text`` / ``textual.content.Content`` built from :func:`sanitize`.
"""

from __future__ import annotations

import re

# C0 (minus TAB), DEL, C1, U+2028/2029, bidi embeddings/overrides/isolates,
# and the zero-width bidi marks that can hide text direction changes.
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMES = {"\n": "\\n", "\r": "\\r", "\x1b": "\\x1b", "\x00": "\\0", "\x7f": "\\x7f"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    named = _NAMES.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitize(text: str, keep_newlines: bool = False) -> str:
    """Escape control characters (and bidi overrides) so they display as text.

    Args:
        text: untrusted text from the target.
        keep_newlines: keep ``\\n`` as a real line break (multi-line previews).
            A ``\\r`` is always escaped, even before ``\\n``: a bare carriage
            return would let a line overwrite what is already drawn.

    Returns:
        Text with every unsafe character replaced by a visible escape.
    """
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escape, part) for part in text.split("\n"))
    return _UNSAFE.sub(_escape, text)


def sanitize_bytes(data: bytes, keep_newlines: bool = False) -> str:
    """Decode untrusted bytes (invalid UTF-8 becomes U+FFFD), then sanitise.

    Raw C1 bytes (0x80-0x9f) are not valid UTF-8 on their own, so they end up
    as U+FFFD rather than as 8-bit CSI that some terminals would obey.
    """
    return sanitize(data.decode("utf-8", errors="replace"), keep_newlines=keep_newlines)


def sanitize_markup(text: str, keep_newlines: bool = False) -> str:
    """Sanitise and escape Textual markup, for text placed inside a markup string.

    Args:
        text: untrusted text from the target.
        keep_newlines: as for :func:`sanitize`.

    Returns:
        Text safe to interpolate into markup: no control characters, and
        ``[...]`` shows literally instead of styling or binding actions.
    """
    # Textual's markup.escape() only escapes tags that start with [a-z#/@];
    # ``[$accent]`` and upper-case tags would still parse. Textual reads
    # "\\[" as a literal bracket whatever precedes it, so escape every one.
    return sanitize(text, keep_newlines).replace("[", "\\[")
