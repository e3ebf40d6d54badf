"""The Files screen's tree: one container directory, filled page by page from ListDir.

Labels are ``rich`` Text built from sanitised names (never markup). A node's
data is an :class:`Entry`; a "more" leaf stands for the next page of its parent.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from protos import files_pb2
from tui.sanitize import sanitize
from tui.widgets.file_format import display_name, entry_path

PAGE = 1000


@dataclass
class Entry:
    """What a tree node stands for."""

    path: str
    info: files_pb2.FileInfo | None = None
    is_dir: bool = False
    loaded: bool = False
    more_token: str = ""  # set on a "load more" node: the next page of its parent


class FileTree(Tree[Entry]):
    """A lazy tree of one directory of the container."""

    def show_dir(self, path: str, container: str) -> None:
        """Start over at ``path`` (children come from :meth:`fill`)."""
        where = f"  [{sanitize(container)}]" if container else ""
        self.reset(Text(sanitize(path)).append(where, style="dim"), Entry(path, is_dir=True))

    def fill(self, node: TreeNode[Entry], resp: files_pb2.ListDirResponse) -> None:
        """Add one ListDir page under ``node``, and a "more" leaf if pages remain."""
        for child in list(node.children):
            if child.data is not None and child.data.more_token:
                child.remove()  # the "more" node this page replaces
        base = node.data.path if node.data else "/"
        for e in resp.entries:
            is_dir = e.type == files_pb2.FILE_TYPE_DIRECTORY
            label = Text(display_name(e), style="bold" if is_dir else "")
            if e.denied_reason:
                label.stylize("dim")
            node.add(label, Entry(entry_path(e, base), e, is_dir=is_dir), allow_expand=is_dir)
        if resp.page.next_page_token:
            shown = sum(1 for c in node.children if c.data and not c.data.more_token)
            node.add_leaf(
                Text(
                    f"… {resp.page.total - shown} more (enter loads the next {PAGE})",
                    style="italic",
                ),
                Entry(base, more_token=resp.page.next_page_token),
            )
        node.expand()

    def show_matches(self, root: str, pattern: str, resp: files_pb2.FindResponse) -> None:
        """Replace the tree with Find results (full paths)."""
        self.reset(
            Text(f"find {sanitize(pattern)}: {len(resp.matches)} match(es)"),
            Entry(root, is_dir=True, loaded=True),
        )
        for m in resp.matches:
            is_dir = m.type == files_pb2.FILE_TYPE_DIRECTORY
            self.root.add(
                Text(sanitize(m.path)),
                Entry(entry_path(m, "/"), m, is_dir=is_dir),
                allow_expand=is_dir,
            )
        if resp.truncated:
            self.root.add_leaf(
                Text(f"… stopped at a bound after {resp.scanned} entries", style="italic")
            )
        self.root.expand()
