"""The Files screen's right-hand pane: metadata, a capped preview, follow output, progress.

Everything shown comes from the target and goes through ``sanitize`` first;
text is rendered as ``rich`` objects (never Textual markup), so a file name
like ``[@click=app.quit]`` is just text.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Log, ProgressBar, Static

from protos import files_pb2
from tui.sanitize import sanitize, sanitize_bytes
from tui.widgets.file_format import display_name, human_size, mode_string, owner, short_time

#: Bytes fetched for a preview; the rest is one `d` away.
PREVIEW_BYTES = 128 << 10
HEX_BYTES = 4 << 10
FOLLOW_MAX_LINES = 5000


def is_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KiB, or mostly non-text: show as hex."""
    head = data[:8192]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multibyte character cut at the end of the window is still text.
        return e.start < len(head) - 4
    return False


def hex_dump(data: bytes, offset: int = 0, per_line: int = 16) -> str:
    """``per_line`` bytes per line: offset, hex, printable ASCII (like xxd)."""
    lines = []
    width = per_line * 3 - 1
    for i in range(0, len(data), per_line):
        row = data[i : i + per_line]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        lines.append(f"{offset + i:08x}  {hexes:<{width}}  {text}")
    return "\n".join(lines)


def render_preview(path: str, data: bytes, size: int) -> RenderableType:
    """Syntax-highlighted text (lexer from the extension) or a hex dump, with a cap note."""
    if is_binary(data):
        # 8 bytes a line: fits the preview pane of an 80-column terminal without wrapping.
        body: RenderableType = Text(hex_dump(data[:HEX_BYTES], per_line=8), no_wrap=True)
        shown = min(len(data), HEX_BYTES)
        note = f"binary: first {human_size(shown)} of {human_size(size)} as hex; d downloads it"
    else:
        code = sanitize_bytes(data, keep_newlines=True)
        lexer = Syntax.guess_lexer(path, code)
        body = Syntax(code, lexer, line_numbers=True, word_wrap=False, theme="ansi_dark")
        note = ""
        if size > len(data):
            note = f"showing the first {human_size(len(data))} of {human_size(size)}; d downloads it all"
    return Group(Text(note, style="italic dim"), body) if note else body


def info_line(info: files_pb2.FileInfo) -> Text:
    """One line: mode, owner, size, mtime, name (and why reads are refused, if they are)."""
    user, group = owner(info)
    line = Text(
        f"{mode_string(info)}  {user}:{group}  {human_size(info.size)}  "
        f"{short_time(info.mtime.seconds)}  {display_name(info)}"
    )
    if info.allocated < info.size // 2 and info.size > 1 << 20:
        line.append(f"  (sparse: {human_size(info.allocated)} allocated)", style="dim")
    if info.denied_reason:
        line.append(f"  reads refused: {sanitize(info.denied_reason)}", style="bold red")
    elif info.sensitive:
        line.append(f"  on a {sanitize(info.sensitive)} mount (reads audited)", style="bold yellow")
    return line


class FilePreview(Vertical):
    """Metadata line, scrollable preview, follow log and a download progress bar."""

    DEFAULT_CSS = """
    FilePreview { width: 1fr; }
    FilePreview #fp-info { height: auto; padding: 0 1; background: $boost; }
    FilePreview #fp-scroll { height: 1fr; }
    FilePreview #fp-follow { height: 1fr; display: none; }
    FilePreview #fp-progress { height: 1; display: none; }
    FilePreview.following #fp-follow { display: block; }
    FilePreview.following #fp-scroll { display: none; }
    FilePreview.downloading #fp-progress { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static(Text("select a file"), id="fp-info")
        with VerticalScroll(id="fp-scroll"):
            yield Static(Text(""), id="fp-content")
        yield Log(id="fp-follow", max_lines=FOLLOW_MAX_LINES, auto_scroll=True)
        yield ProgressBar(id="fp-progress", show_eta=True)

    def show_info(self, info: files_pb2.FileInfo) -> None:
        self.query_one("#fp-info", Static).update(info_line(info))

    def show(self, renderable: RenderableType) -> None:
        """Replace the preview (and leave follow mode)."""
        self.remove_class("following")
        self.query_one("#fp-content", Static).update(renderable)
        self.query_one("#fp-scroll", VerticalScroll).scroll_home(animate=False)

    def show_message(self, text: str) -> None:
        self.show(Text(text, style="italic"))

    def start_follow(self, title: str) -> None:
        log = self.query_one("#fp-follow", Log)
        log.clear()
        log.write_line(f"--- following {sanitize(title)} (f or escape stops) ---")
        self.add_class("following")

    def follow_lines(self, lines: list[str]) -> None:
        """Append already-sanitised lines in one batch."""
        self.query_one("#fp-follow", Log).write_lines(lines)

    def stop_follow(self) -> None:
        self.remove_class("following")

    @property
    def following(self) -> bool:
        return self.has_class("following")

    def progress(self, done: int, total: int) -> None:
        bar = self.query_one("#fp-progress", ProgressBar)
        self.add_class("downloading")
        bar.update(total=max(total, 1), progress=done)

    def progress_done(self) -> None:
        self.remove_class("downloading")
