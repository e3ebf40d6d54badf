"""The follow path's per-source line parser: ``parse_line`` with memos for the common case.

Most log lines of one source share a format and, in a burst, a timestamp
prefix. ``LineParser`` keeps per source (so no state is shared between
threads) the last timestamp token and its value, and takes a fast path for
"ISO-TIMESTAMP LEVEL text" lines; anything else goes through the general
``parse_line``. Records are built positionally (keyword calls measured
~0.5 µs a line).
"""

from __future__ import annotations

import time

from agent._logparse import _LEVELS, _text_level, iso_epoch, parse_line
from agent.results.logs import Record

_UPPER_WORDS = {
    w: lv
    for k, lv in _LEVELS.items()
    for w in (k.upper(), f"[{k.upper()}]", f"[{k}]", f"{k.upper()}:", f"<{k}>")
}


_POW10 = tuple(float(10**i) for i in range(10))


class LineParser:
    """Parse lines of one source.

    Args:
        source_id: stamped on every record.
        cap: line cap in bytes.
        full: build field maps (DETAIL_FULL).
    """

    def __init__(self, source_id: str, cap: int, full: bool) -> None:
        self.source_id = source_id
        self.cap = cap
        self.full = full
        self.now = time.time()  # receive time for lines without a timestamp; set per read
        self._tok = ""
        self._t = 0.0

    def parse(  # noqa: PLR0917 - positional on purpose: the hot path
        self,
        raw: bytes,
        offset: int,
        seq: int,
        dropped: int = 0,
        stream: str = "",
        hint: float | None = None,
    ) -> Record:
        """One line (without its newline) as a record."""
        if dropped or len(raw) > self.cap or raw[:1] == b"{" or hint is not None:
            return self._general(raw, offset, seq, dropped, stream, hint)
        rec = self.parse_text(raw.decode("utf-8", "replace"), offset, seq)
        if rec is None:
            return self._general(raw, offset, seq, dropped, stream, hint)
        return rec._replace(stream=stream) if stream else rec

    def parse_text(self, text: str, offset: int, seq: int) -> Record | None:
        """The fast path for "ISO-TIME LEVEL text" lines already decoded; None for anything else.

        Only lines that start with a digit qualify, so JSON and logfmt lines
        (which start with "{" or a key) always take the general path; a line
        that starts with a timestamp is never logfmt there either.
        """
        if not text[:1].isdigit():
            return None
        if text[-1:] == "\r":
            text = text[:-1]
        sp = text.find(" ", 16)  # "2024-01-01 00:00:00,5" keeps its inner space in the token
        if sp < 0:
            return None
        tok = text[:sp]
        if tok == self._tok:
            t = self._t
        else:
            t2 = self._iso(tok)
            if t2 is None:
                return None
            t = self._t = t2
            self._tok = tok
        end = text.find(" ", sp + 1)
        level = _UPPER_WORDS.get(text[sp + 1 : end] if end > 0 else text[sp + 1 :])
        if level is None:
            level = _text_level(text)
        return Record(t, False, self.source_id, level, text, None, text, False, 0, "", offset, seq)

    @staticmethod
    def _iso(tok: str) -> float | None:
        # "2024-01-01T00:00:00.123Z": the seconds part comes from iso_epoch's cache.
        if len(tok) > 21 and tok[19] in ".," and tok[-1] == "Z":
            digits = tok[20:-1][:9]  # beyond nanoseconds means nothing to a float
            if digits.isdigit():
                base = iso_epoch(tok[:19] + "Z")
                if base is not None:
                    return base + int(digits) / _POW10[len(digits)]
        t: float | None = iso_epoch(tok)
        return t

    def _general(  # noqa: PLR0917
        self, raw: bytes, offset: int, seq: int, dropped: int, stream: str, hint: float | None
    ) -> Record:
        return parse_line(
            raw,
            source_id=self.source_id,
            offset=offset,
            seq=seq,
            now=self.now,
            cap=self.cap,
            dropped=dropped,
            full=self.full,
            stream=stream,
            time_hint=hint,
        )
