"""The command palette (ctrl+p): jump to a pid, open or follow a path, probe, switch target.

What the user types is parsed into an action (:func:`parse`), so
``1234``, ``pid 1234``, ``/etc/resolv.conf``, ``follow /var/log/app.log``,
``dns db.internal``, ``tcp db:5432``, ``http://svc/healthz`` and
``target 10.0.0.5:7777`` all work without a menu. The actions call the
screens' public hooks (``ProcessesScreen.select_pid``, ``FilesScreen.open_path``,
``FilesScreen.follow_path``, ``NetworkScreen.run_probe``) through
``BorescopeApp.call_hook``, which says so when a screen lacks the hook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.address import AddressError, format_address, parse_address
from tui.sanitize import sanitize

if TYPE_CHECKING:
    from tui.app import BorescopeApp

_PID = re.compile(r"^(?:pid\s+|p\s+|#)?(\d{1,10})$", re.IGNORECASE)
_PROBE = re.compile(r"^(?:probe\s+)?(dns|tcp|http)\s+(\S.*)$", re.IGNORECASE)
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
_VERB_PATH = re.compile(r"^(open|cat|ls|follow|tail)\s+(/.*)$", re.IGNORECASE)
_TARGET = re.compile(r"^(?:target|connect)\s+(\S+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Action:
    """A parsed palette action.

    Attributes:
        kind: "pid", "open", "follow", "probe" or "target".
        arg: the pid (as text), path, probe spec or address.
        label: what the palette shows.
    """

    kind: str
    arg: str
    label: str


def parse(query: str) -> list[Action]:
    """Every action the typed text could mean, best first ([] when none)."""
    q = query.strip()
    if not q:
        return []
    if m := _PID.match(q):
        return [Action("pid", m.group(1), f"Jump to pid {m.group(1)}")]
    if m := _VERB_PATH.match(q):
        verb, path = m.group(1).lower(), m.group(2)
        kind = "follow" if verb in ("follow", "tail") else "open"
        return [Action(kind, path, f"{'Follow' if kind == 'follow' else 'Open'} {path}")]
    if q.startswith("/"):
        return [Action("open", q, f"Open {q}"), Action("follow", q, f"Follow {q}")]
    if m := _PROBE.match(q):
        spec = f"{m.group(1).lower()} {m.group(2).strip()}"
        return [Action("probe", spec, f"Probe {spec}")]
    if _URL.match(q):
        return [Action("probe", f"http {q}", f"Probe http {q}")]
    if m := _TARGET.match(q):
        return [_target_action(m.group(1))]
    if q.startswith(("pod/", "deploy/")):
        return [_target_action(q)]
    try:
        host, port = parse_address(q)
    except AddressError:
        return []
    return [_target_action(format_address(host, port))]


def _target_action(address: str) -> Action:
    return Action("target", address, f"Switch target to {address}")


HIT_HELP = {
    "pid": "Processes screen: select this pid and show its details",
    "open": "Files screen: open this path inside the target's root",
    "follow": "Files screen: follow this file as it grows",
    "probe": "Network screen: run this probe from the pod's network namespace",
    "target": "connect to this sidecar instead (screens are rebuilt)",
}

#: Entries shown before anything is typed: (label, help, kind).
DISCOVER: tuple[tuple[str, str, str], ...] = (
    ("Jump to pid…", "type a pid, e.g. 1234 or 'pid 1234'", "ask-pid"),
    ("Open a path…", "type an absolute path in the target, e.g. /etc/resolv.conf", "ask-open"),
    ("Follow a file…", "type 'follow /var/log/app.log'", "ask-follow"),
    ("Run a probe…", "type 'dns NAME', 'tcp HOST:PORT' or an http:// URL", "ask-probe"),
    ("Switch target…", "recent sidecars and pods with the sidecar (ctrl+t)", "pick-target"),
    ("Toggle dark / light theme", "f2", "theme"),
    ("Show keys", "every binding of this screen and the app (?)", "help"),
)


class BorescopeCommands(Provider):
    """Palette provider for borescope's actions."""

    @property
    def _app(self) -> BorescopeApp:
        return self.app  # type: ignore[return-value]

    async def discover(self) -> Hits:
        for label, help_text, kind in DISCOVER:
            yield DiscoveryHit(label, partial(self._static, kind), help=help_text)

    async def search(self, query: str) -> Hits:
        for rank, action in enumerate(parse(query)):
            # sanitize(): the query may be pasted text with control characters.
            yield Hit(
                1.0 - rank * 0.01,
                sanitize(action.label),
                partial(self._run, action),
                help=HIT_HELP[action.kind],
            )
        matcher = self.matcher(query)
        for label, help_text, kind in DISCOVER:
            score = matcher.match(label)
            if score > 0:
                yield Hit(
                    score * 0.9,
                    matcher.highlight(label),
                    partial(self._static, kind),
                    help=help_text,
                )

    def _static(self, kind: str) -> None:
        app = self._app
        if kind == "pick-target":
            app.action_pick_target()
        elif kind == "theme":
            app.action_toggle_theme()
        elif kind == "help":
            app.action_help()
        else:
            from tui.widgets.prompt import Prompt

            prompts = {
                "ask-pid": ("Jump to pid", "1234", "pid "),
                "ask-open": ("Open a path in the target", "/etc/resolv.conf", "open "),
                "ask-follow": ("Follow a file in the target", "/var/log/app.log", "follow "),
                "ask-probe": ("Run a probe", "dns NAME | tcp HOST:PORT | http URL", "probe "),
            }
            title, placeholder, prefix = prompts[kind]

            def answered(text: str | None) -> None:
                if text:
                    actions = parse(prefix + text if not text.startswith(prefix) else text)
                    if actions:
                        self._run(actions[0])
                    else:
                        app.notify(f"Not understood: {sanitize(text)!r}", severity="warning")

            app.push_screen(Prompt(title, placeholder), answered)

    def _run(self, action: Action) -> None:
        run_action(self._app, action)


def run_action(app: BorescopeApp, action: Action) -> None:
    """Carry out a parsed action on the app (hooks run on the event loop)."""
    if action.kind == "target":
        from tui.address import AddressError
        from tui.screens.target_picker import parse_choice

        try:
            # parse_choice never carries this sidecar's token to another one.
            app.switch_target(parse_choice(action.arg))
        except AddressError as e:
            app.report_error(str(e))
        return
    mode, hook, args = _HOOKS[action.kind](action.arg)
    app.run_worker(app.call_hook(mode, hook, *args), exclusive=True, group="palette-hook")


_HOOKS: dict[str, Any] = {
    "pid": lambda a: ("processes", "select_pid", (int(a),)),
    "open": lambda a: ("files", "open_path", (a,)),
    "follow": lambda a: ("files", "follow_path", (a,)),
    "probe": lambda a: ("network", "run_probe", (a,)),
}
