"""The home screen's log pane: Textual's ``Log`` (fast, line-capped) with colours.

Colours are applied by a highlighter at render time, and Textual renders only
the visible lines, so styling costs nothing for the thousands of lines off
screen: the time dim, the level by severity, the source in its own colour,
search matches reversed. Lines are written in batches (``write_lines``) by the
screen's timer, never one write per line.
"""

from __future__ import annotations

import re

from rich.highlighter import Highlighter
from rich.text import Text
from textual.widgets import Log

from tui.widgets.log_format import (
    GUTTER_MARK,
    LEVEL_AT,
    LEVEL_STYLES,
    SOURCE_AT,
    SOURCE_WIDTH,
    TEXT_AT,
)


class LineHighlighter(Highlighter):
    """Style one rendered line by its fixed columns, plus search matches."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}  # short name -> colour
        self.search: re.Pattern[str] | None = None

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if len(plain) < TEXT_AT or plain[LEVEL_AT - 1 : LEVEL_AT] not in (" ", "~"):
            self._search(text, plain, 0)
            return
        if plain[0] == GUTTER_MARK:
            text.stylize("bold yellow", 0, 1)
        text.stylize("dim", 1, LEVEL_AT)
        level = plain[LEVEL_AT : LEVEL_AT + 5].strip()
        style = LEVEL_STYLES.get(level)
        if style:
            text.stylize(style, LEVEL_AT, LEVEL_AT + 5)
        source = plain[SOURCE_AT : SOURCE_AT + SOURCE_WIDTH].strip()
        colour = self.sources.get(source)
        if colour:
            text.stylize(colour, SOURCE_AT, SOURCE_AT + SOURCE_WIDTH)
        if level in ("ERROR", "FATAL", "GAP"):
            text.stylize("red", TEXT_AT)
        self._search(text, plain, TEXT_AT)

    def _search(self, text: Text, plain: str, start: int) -> None:
        if self.search is None:
            return
        for m in self.search.finditer(plain, start):
            if m.end() > m.start():
                text.stylize("reverse bold", m.start(), m.end())


class LogView(Log):
    """A capped, coloured log pane."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    def __init__(self, max_lines: int, **kwargs: object) -> None:
        super().__init__(highlight=True, max_lines=max_lines, auto_scroll=True, **kwargs)  # type: ignore[arg-type]
        self.line_highlighter = LineHighlighter()
        self.highlighter = self.line_highlighter

    def restyle(self) -> None:
        """Render visible lines again (after colours or the search changed)."""
        self._render_line_cache.clear()
        self.refresh()

    def set_line(self, y: int, text: str) -> None:
        """Replace the text of line ``y`` (a bookmark mark) and redraw it."""
        # Log keeps its lines in a list and has no public setter (Textual 8.x).
        lines = self._lines
        if 0 <= y < len(lines):
            lines[y] = text
            self.refresh_lines(y)

    @property
    def top_line(self) -> int:
        """Index of the first visible line."""
        return int(self.scroll_offset.y)

    def center_on(self, y: int) -> None:
        """Scroll so line ``y`` is in view (in the upper third)."""
        self.scroll_to(y=max(0, y - self.size.height // 3), animate=False)
