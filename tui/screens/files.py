"""The Files screen: the target's filesystem as a lazy tree with a preview.

The tree is rooted at one directory of the container (``/`` at first) and
loads each directory from ListDir when it is expanded (first page; a "more"
node loads the next). Selecting a file shows its metadata and a capped,
syntax-highlighted preview. ``f`` follows the file (FollowFile), ``d``
downloads it with a progress bar (tui.transfer: verified, resumable, never
outside the chosen directory), ``/`` finds by name or glob under the current
directory, ``backspace`` goes up. gRPC runs in thread workers; nothing here
blocks the event loop.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, ClassVar

import grpc
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Tree
from textual.widgets.tree import TreeNode

from protos import common_pb2, files_pb2, info_pb2
from tui.client import Client, describe_rpc_error
from tui.sanitize import sanitize, sanitize_bytes
from tui.transfer import TransferError, download
from tui.widgets.file_format import path_fields
from tui.widgets.file_preview import PREVIEW_BYTES, FilePreview, info_line, render_preview
from tui.widgets.file_tree import PAGE, Entry, FileTree
from tui.widgets.header import BorescopeHeader
from tui.widgets.prompt import Prompt

CALL_TIMEOUT_S = 10.0
FIND_RESULTS = 500


class FilesScreen(Screen[None]):
    """Browse, preview, follow, find and download the target's files."""

    CSS_PATH = "files.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f", "follow", "Follow", tooltip="Follow the selected file (tail -f); again stops."
        ),
        Binding("d", "download", "Download", tooltip="Download the selected file, verified."),
        Binding("slash", "find", "Find", key_display="/", tooltip="Find by name or glob below."),
        Binding("backspace", "up", "Up", tooltip="Show the parent directory."),
        Binding("g", "goto", "Go to", tooltip="Open a path typed in."),
        Binding("r", "refresh", "Refresh", tooltip="Reload the tree."),
        # Off the footer (it is full at 80 columns); the ? overlay lists it.
        Binding(
            "c",
            "container",
            "Container",
            show=False,
            tooltip="Browse another container of the pod.",
        ),
        Binding("escape", "stop", "Stop", show=False, tooltip="Stop following."),
    ]

    def __init__(self, container: str = "") -> None:
        super().__init__()
        self.container = container
        """Container id or name ("" = the sidecar's primary app container)."""
        self.root_path = "/"
        self._follow_call: Any = None
        self._selected: Entry | None = None
        self._wanted = ""

    # -- layout -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield BorescopeHeader()
        with Horizontal():
            tree = FileTree(Text("/"), data=Entry("/", is_dir=True), id="files-tree")
            tree.show_root = True
            yield tree
            yield FilePreview(id="files-preview")
        yield Footer()

    def on_mount(self) -> None:
        self._reroot(self.root_path)

    @property
    def client(self) -> Client:
        return self.app.client  # type: ignore[attr-defined, no-any-return]

    @property
    def preview(self) -> FilePreview:
        return self.query_one(FilePreview)

    @property
    def file_tree(self) -> FileTree:
        return self.query_one(FileTree)

    def _sel(self) -> common_pb2.ContainerSelector:
        return common_pb2.ContainerSelector(id=self.container)

    def _kw(self) -> dict[str, Any]:
        return {"metadata": self.client.metadata, "timeout": CALL_TIMEOUT_S}

    def _error(self, text: str) -> None:
        self.notify(sanitize(text), severity="error", markup=False)

    # -- public hooks (command palette) -------------------------------------------

    def set_container(self, container: str) -> None:
        """Browse another container (id or name) from its root."""
        self.container = container
        self._reroot("/")

    def open_path(self, path: str) -> None:
        """Show ``path``: a directory becomes the tree's root; a file is previewed."""
        self._open(path.strip() or "/", follow=False)

    def follow_path(self, path: str) -> None:
        """Show ``path``'s directory and follow the file."""
        self._open(path.strip(), follow=True)

    # -- tree -------------------------------------------------------------------

    def _reroot(self, path: str) -> None:
        self._stop_follow()
        self.root_path = path
        tree = self.file_tree
        tree.show_dir(path, self.container)
        self._load(tree.root, "")

    def _load(self, node: TreeNode[Entry], token: str) -> None:
        assert node.data is not None
        node.data.loaded = True
        self._list_dir(node, node.data.path, token)

    @work(thread=True, group="list", exit_on_error=False)
    def _list_dir(self, node: TreeNode[Entry], path: str, token: str) -> None:
        req = files_pb2.ListDirRequest(
            container=self._sel(),
            **path_fields(path),
            page=common_pb2.PageRequest(page_size=PAGE, page_token=token),
        )
        try:
            resp = self.client.files.ListDir(req, **self._kw())
        except grpc.RpcError as e:
            self.app.call_from_thread(self._error, f"{path}: {describe_rpc_error(e)}")
            return
        self.app.call_from_thread(self.file_tree.fill, node, resp)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Entry]) -> None:
        data = event.node.data
        if data is not None and data.is_dir and not data.loaded:
            self._load(event.node, "")

    def on_tree_node_selected(self, event: Tree.NodeSelected[Entry]) -> None:
        data = event.node.data
        if data is None:
            return
        if data.more_token:
            parent = event.node.parent
            if parent is not None:
                self._list_dir(parent, data.path, data.more_token)
            return
        self._selected = data
        if data.info is not None:
            self.preview.show_info(data.info)
        if not data.is_dir:
            self._stop_follow()
            self._preview(data.path)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Entry]) -> None:
        data = event.node.data
        if data is not None and data.info is not None:
            self._selected = data
            self.preview.show_info(data.info)

    # -- preview ----------------------------------------------------------------

    def _preview(self, path: str) -> None:
        self._wanted = path  # a slower, older preview must not overwrite this one
        self._fetch_preview(path)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _fetch_preview(self, path: str) -> None:
        req = files_pb2.ReadFileRequest(
            container=self._sel(), **path_fields(path), length=PREVIEW_BYTES
        )
        try:
            resp = self.client.files.ReadFile(req, **self._kw())
        except grpc.RpcError as e:
            self.app.call_from_thread(self._show_file, path, None, Text(describe_rpc_error(e)))
            return
        body = render_preview(path, resp.data, resp.file_size)
        self.app.call_from_thread(self._show_file, path, resp.info, body)

    def _show_file(self, path: str, info: files_pb2.FileInfo | None, body: Any) -> None:
        if path != self._wanted:
            return
        if info is not None:
            self.preview.show_info(info)
        self.preview.show(body)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open(self, path: str, follow: bool) -> None:
        req = files_pb2.StatRequest(
            container=self._sel(), **path_fields(path), follow_symlinks=True
        )
        try:
            info = self.client.files.Stat(req, **self._kw())
        except grpc.RpcError as e:
            self.app.call_from_thread(self._error, f"{path}: {describe_rpc_error(e)}")
            return
        self.app.call_from_thread(self._opened, path, info, follow)

    def _opened(self, path: str, info: files_pb2.FileInfo, follow: bool) -> None:
        path = posixpath.normpath("/" + path.lstrip("/"))
        if info.type == files_pb2.FILE_TYPE_DIRECTORY:
            self._reroot(path)
            return
        self._reroot(posixpath.dirname(path))
        self._selected = Entry(path, info)
        self.preview.show_info(info)
        if follow:
            self._start_follow(path)
        else:
            self._preview(path)

    # -- follow -----------------------------------------------------------------

    def action_follow(self) -> None:
        """Follow the selected file (tail -f); again stops."""
        if self.preview.following:
            self._stop_follow()
            return
        if self._selected is None or self._selected.is_dir:
            self.notify("select a file to follow", severity="warning")
            return
        self._start_follow(self._selected.path)

    def _start_follow(self, path: str) -> None:
        self._stop_follow()
        self.preview.start_follow(path)
        self._follow(path)

    def _stop_follow(self) -> None:
        call, self._follow_call = self._follow_call, None
        if call is not None:
            call.cancel()
        for preview in self.query(FilePreview):  # none left while unmounting
            preview.stop_follow()

    def action_stop(self) -> None:
        """Stop following."""
        self._stop_follow()

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow(self, path: str) -> None:
        req = files_pb2.FollowFileRequest(
            container=self._sel(),
            **path_fields(path),
            tail_lines=50,
            on_lost_cursor=common_pb2.LOST_CURSOR_GAP,
        )
        setattr(req, "from", files_pb2.FOLLOW_FROM_TAIL)  # "from" is a Python keyword
        call = self.client.files.FollowFile(req, metadata=self.client.metadata)
        self._follow_call = call
        partial = b""
        try:
            for msg in call:
                lines: list[str] = []
                if msg.HasField("gap"):
                    lines.append(f"--- gap: {sanitize(msg.gap.reason)} ---")
                if msg.event:
                    name = files_pb2.FileEvent.Name(msg.event).removeprefix("FILE_EVENT_").lower()
                    lines.append(f"--- {name} ---")
                if msg.data:
                    *whole, partial = (partial + msg.data).split(b"\n")
                    lines += [sanitize_bytes(w) for w in whole]
                if lines:
                    self.app.call_from_thread(self.preview.follow_lines, lines)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.app.call_from_thread(self._error, f"follow {path}: {describe_rpc_error(e)}")

    # -- download ---------------------------------------------------------------

    def action_download(self) -> None:
        """Download the selected file, verified."""
        sel = self._selected
        if sel is None or sel.is_dir:
            self.notify("select a file to download", severity="warning")
            return

        def chosen(dest: str | None) -> None:
            if dest:
                self._download(sel.path, os.path.expanduser(dest))

        self.app.push_screen(
            Prompt(f"Download {sanitize(sel.path)} into directory:", os.getcwd()), chosen
        )

    @work(thread=True, group="download", exit_on_error=False)
    def _download(self, path: str, dest: str) -> None:
        last = [0]

        def progress(done: int, total: int) -> None:
            if done - last[0] >= 4 << 20 or done == total:
                last[0] = done
                self.app.call_from_thread(self.preview.progress, done, total)

        try:
            res = download(self.client, path, dest, container=self.container, progress=progress)
        except (TransferError, OSError) as e:
            self.app.call_from_thread(self._error, f"download failed: {e}")
        except grpc.RpcError as e:
            self.app.call_from_thread(
                self._error, f"download interrupted (rerun to resume): {describe_rpc_error(e)}"
            )
        else:
            self.app.call_from_thread(
                self.notify, f"saved {sanitize(res.path)} (sha256 verified)", markup=False
            )
        finally:
            self.app.call_from_thread(self.preview.progress_done)

    # -- find, navigation -------------------------------------------------------

    def action_find(self) -> None:
        """Find by name or glob under the tree's root."""

        def chosen(pattern: str | None) -> None:
            if pattern:
                self._find(self.root_path, pattern)

        self.app.push_screen(
            Prompt(f"Find under {sanitize(self.root_path)} (name or glob like *.log):", "*.log"),
            chosen,
        )

    @work(thread=True, exclusive=True, group="find", exit_on_error=False)
    def _find(self, root: str, pattern: str) -> None:
        glob = pattern if any(c in pattern for c in "*?[") else ""
        req = files_pb2.FindRequest(
            container=self._sel(),
            glob=glob,
            name="" if glob else pattern,
            max_results=FIND_RESULTS,
            **path_fields(root),
        )
        try:
            resp = self.client.files.Find(req, **self._kw())
        except grpc.RpcError as e:
            self.app.call_from_thread(self._error, f"find: {describe_rpc_error(e)}")
            return
        self.app.call_from_thread(self._found, pattern, resp)

    def _found(self, pattern: str, resp: files_pb2.FindResponse) -> None:
        self.file_tree.show_matches(self.root_path, pattern, resp)
        if resp.matches:
            self.preview.show_info(resp.matches[0])

    def action_up(self) -> None:
        """Show the parent directory."""
        if self.root_path != "/":
            self._reroot(posixpath.dirname(self.root_path.rstrip("/")) or "/")

    def action_goto(self) -> None:
        """Open a path typed in."""

        def chosen(path: str | None) -> None:
            if path:
                self.open_path(path)

        self.app.push_screen(Prompt("Open path in the container:", "/var/log"), chosen)

    def action_container(self) -> None:
        """Browse another container of the pod."""
        self._pick_container()

    @work(thread=True, exclusive=True, group="containers", exit_on_error=False)
    def _pick_container(self) -> None:
        try:
            resp = self.client.info.ListContainers(
                info_pb2.ListContainersRequest(include_sidecar=True), **self._kw()
            )
        except grpc.RpcError as e:
            self.app.call_from_thread(self._error, f"containers: {describe_rpc_error(e)}")
            return
        names = ", ".join(f"{sanitize(c.name)} ({c.id})" for c in resp.containers)
        self.app.call_from_thread(self._ask_container, names)

    def _ask_container(self, names: str) -> None:
        def chosen(name: str | None) -> None:
            if name is not None:
                self.set_container(name)

        self.app.push_screen(Prompt(f"Browse which container? ({names})", "name or id"), chosen)

    def action_refresh(self) -> None:
        """Reload the tree."""
        self._reroot(self.root_path)

    def on_unmount(self) -> None:
        self._stop_follow()


__all__ = ["FilesScreen", "info_line"]
