"""The home screen's log pane: Textual's ``Log`` (fast, line-capped) with colours.

Lines are written in batches (``write_rows``, over ``Log.write_lines``) by the
screen's timer, never one write per line; ``max_lines`` caps them. The view
keeps the row behind each line (``rows``, pruned with the lines), and styles
a line from it when it is drawn: the time dim, the level by severity, the
source in its own colour, the message (red for errors), the ``key=value``
fields dim, search matches reversed. Textual draws only the visible lines,
so styling costs nothing for the thousands off screen.

Drawing is on the hot path at 10k lines/s (every visible line is new on
every tick), so a line is cut into styled segments directly instead of going
through a Rich ``Text`` and a highlighter: about 8 µs a line instead of 31
(measured on the 2-core dev machine); the Rich path is kept for search
matches and mouse selections. Two ``Log`` costs are avoided too: it measures
each batch's widths in a new worker thread (a thread per write, fighting the
UI for the GIL), and it forgets cached lines one at a time (20,000 calls for
a full rewrite) although this view caches none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Log

from tui.widgets.log_format import (
    GUTTER_MARK,
    LEVEL_AT,
    LEVEL_STYLES,
    SOURCE_AT,
    SOURCE_WIDTH,
    TEXT_AT,
    Row,
)

FIELDS_STYLE = "dim"
TIME_STYLE = "dim"
MARK_STYLE = "bold yellow"
SEARCH_STYLE = "reverse bold"
ERROR_TEXT = "red"
_ERROR_TAGS = frozenset(("ERROR", "FATAL", "GAP"))


class LineHighlighter:
    """What the view colours by: a colour per source name, and the search regex."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}  # short name -> colour
        self.search: re.Pattern[str] | None = None


def spans(
    line: str, row: Row | None, first: bool, sources: dict[str, str]
) -> list[tuple[int, int, str]]:
    """The styled spans of a screen line: (start, end, style), in order, covering it.

    Args:
        line: the line as shown.
        row: the row it belongs to (None: a line written without one).
        first: it is the row's first line (later lines are pretty JSON).
        sources: source name -> colour.
    """
    n = len(line)
    if row is None or not first or n < TEXT_AT:
        return [(0, n, "")]
    tag = line[LEVEL_AT : LEVEL_AT + 5].rstrip()
    source = line[SOURCE_AT : SOURCE_AT + SOURCE_WIDTH].rstrip()
    out = [
        (0, 1, MARK_STYLE if line[0] == GUTTER_MARK else ""),
        (1, LEVEL_AT, TIME_STYLE),
        (LEVEL_AT, LEVEL_AT + 5, LEVEL_STYLES.get(tag, "")),
        (LEVEL_AT + 5, SOURCE_AT, ""),
        (SOURCE_AT, SOURCE_AT + SOURCE_WIDTH, sources.get(source, "")),
        (SOURCE_AT + SOURCE_WIDTH, TEXT_AT, ""),
    ]
    text_style = ERROR_TEXT if tag in _ERROR_TAGS else ""
    at = row.fields_at
    if at and n == at + len(row.fields):  # the one-line form: message, then fields
        out.append((TEXT_AT, at, text_style))
        out.append((at, n, FIELDS_STYLE))
    else:
        out.append((TEXT_AT, n, text_style))
    return out


class LogView(Log):
    """A capped, coloured log pane that knows the row behind each line."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    def __init__(self, max_lines: int, **kwargs: object) -> None:
        super().__init__(highlight=False, max_lines=max_lines, auto_scroll=True, **kwargs)  # type: ignore[arg-type]
        self.line_highlighter = LineHighlighter()
        self.rows: list[Row] = []
        """The row behind each line (a pretty-printed row has several lines)."""
        self._styles: dict[str, Style] = {}
        self._styles_base: Style | None = None
        self._remeasure = False

    # -- writing ---------------------------------------------------------------

    def write_rows(self, lines: Sequence[str], owners: Sequence[Row], scroll_end: bool) -> int:
        """Append ``lines`` (one ``write_lines`` call) and the row of each.

        Returns:
            How many lines the cap pruned from the start.
        """
        self.rows.extend(owners)
        self.write_lines(lines, scroll_end=scroll_end)
        excess = len(self.rows) - len(self._lines)
        if excess > 0:
            del self.rows[:excess]
        return max(0, excess)

    def _update_size(self, updates: int, lines: list[str]) -> None:  # type: ignore[override]
        # Log measures each batch in a new worker thread; this is a few µs a batch.
        if self._remeasure:  # the first batch after clear(): the width starts afresh
            self._remeasure = False
            self._width = 0
        if lines:
            width = max(len(s) if s.isascii() else cell_len(s) for s in lines)
            self._update_maximum_width(updates, width)
        else:
            self._update_maximum_width(updates, 0)

    def refresh_lines(self, y_start: int, line_count: int = 1) -> None:
        # Log forgets its cached strips one line at a time (20,000 calls for a full
        # rewrite); this view caches none (see _render_line_strip).
        ScrollView.refresh_lines(self, y_start, line_count)

    def clear(self) -> LogView:
        """Remove every line, keeping the size until the next write (see below).

        Log.clear() sets the virtual size to 0x0; the rewrite that follows (a
        level or filter change) then sets it back, and each change of that
        reactive is a layout pass of the whole screen (~10 ms) before the
        frame that shows the key's effect. Here the size is left as it was
        and the next write sets it once; it changes only if the content did.
        """
        self._lines.clear()
        self._render_line_cache.clear()
        self._updates += 1
        self._clear_y = 0
        self._remeasure = True
        self.rows.clear()
        return self

    def restyle(self) -> None:
        """Draw the visible lines again (after colours or the search changed)."""
        self.refresh()

    def set_line(self, y: int, text: str) -> None:
        """Replace the text of line ``y`` (a bookmark mark) and redraw it."""
        # Log keeps its lines in a list and has no public setter (Textual 8.x).
        lines = self._lines
        if 0 <= y < len(lines):
            lines[y] = text
            self.refresh_lines(y)

    # -- drawing ---------------------------------------------------------------

    def _style(self, name: str, base: Style) -> Style:
        if base is not self._styles_base:
            self._styles = {}
            self._styles_base = base
        style = self._styles.get(name)
        if style is None:
            style = base + Style.parse(name) if name else base
            self._styles[name] = style
        return style

    def _render_line_strip(self, y: int, rich_style: Style) -> Strip:
        # Not cached (as in Log without a selection): a cached strip keeps its
        # cropped and offset copies alive, some 60 objects a line for the cycle
        # collector to walk again and again, and drawing a line costs ~8 µs.
        selection = self.text_selection
        line = self._lines[y]
        rows = self.rows
        row = rows[y] if y < len(rows) else None
        first = y == 0 or row is None or rows[y - 1] is not row
        cuts = spans(line, row, first, self.line_highlighter.sources)
        search = self.line_highlighter.search
        if selection is not None or (search is not None and search.search(line) is not None):
            return self._rich_strip(y, line, cuts, rich_style)
        style = self._style
        return Strip(
            [Segment(line[a:b], style(name, rich_style)) for a, b, name in cuts if b > a],
            len(line) if line.isascii() else cell_len(line),
        )

    def _rich_strip(
        self, y: int, line: str, cuts: Iterable[tuple[int, int, str]], rich_style: Style
    ) -> Strip:
        """The slow path, through Rich: search matches and a mouse selection on top."""
        text = Text(line, no_wrap=True)
        text.stylize(rich_style)
        for a, b, name in cuts:
            if name and b > a:
                text.stylize(name, a, b)
        search = self.line_highlighter.search
        if search is not None:
            for m in search.finditer(line):
                if m.end() > m.start():
                    text.stylize(SEARCH_STYLE, m.start(), m.end())
        selection = self.text_selection
        if selection is not None:
            span = selection.get_span(y - self._clear_y)
            if span is not None:
                start, end = span
                if end == -1:
                    end = len(text)
                text.stylize(self.screen.get_component_rich_style("screen--selection"), start, end)
        return Strip(text.render(self.app.console), cell_len(line))

    @property
    def top_line(self) -> int:
        """Index of the first visible line."""
        return int(self.scroll_offset.y)

    def center_on(self, y: int) -> None:
        """Scroll so line ``y`` is in view (in the upper third)."""
        self.scroll_to(y=max(0, y - self.size.height // 3), animate=False)
