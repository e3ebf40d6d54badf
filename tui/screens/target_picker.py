"""Pick another sidecar: type an address or pod/NAME, or choose a recent one or a pod.

Recent targets come from ``tui.recent``. Pods that carry the sidecar come
from the Kubernetes layer (``tui.kube``): every kubeconfig context (up to
``MAX_CONTEXTS``), all namespaces where RBAC allows, else the context's
namespace. Listing runs in a worker with a per-call timeout, so a slow or
dead API server never freezes the picker, and a failure is one line in the
list. Choosing a pod connects through a port-forward (``tui.kube.connect``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from tui import recent
from tui.address import AddressError, format_address, parse_address
from tui.client import Target
from tui.sanitize import sanitize, sanitize_markup

MAX_CONTEXTS = 6
LIST_TIMEOUT_S = 3.0
KUBE_PREFIX = "kube:"


@dataclass(frozen=True)
class KubeChoice:
    """A pod or deployment reached through the Kubernetes layer (port-forward).

    Attributes:
        spec: "pod/NAME[/CONTAINER]" or "deploy/NAME".
        context: kubeconfig context (None = the current one).
        namespace: namespace (None = the context's).
    """

    spec: str
    context: str | None = None
    namespace: str | None = None

    @property
    def label(self) -> str:
        where = "/".join(p for p in (self.context, self.namespace) if p)
        return f"{where} {self.spec}" if where else self.spec

    def to_recent(self) -> str:
        """The form stored in the recent list."""
        return f"{KUBE_PREFIX}{self.context or ''}:{self.namespace or ''}:{self.spec}"

    @classmethod
    def from_recent(cls, text: str) -> KubeChoice | None:
        if not text.startswith(KUBE_PREFIX):
            return None
        ctx, _, rest = text[len(KUBE_PREFIX) :].partition(":")
        ns, _, spec = rest.partition(":")
        return cls(spec, ctx or None, ns or None) if spec else None


Choice = Target | KubeChoice


def discover_kube_targets() -> list[KubeChoice] | str:
    """Pods carrying the sidecar in every context; a string says why there are none.

    Blocking (API calls): run it in a worker.
    """
    try:
        from kubernetes.config import ConfigException, list_kube_config_contexts

        from tui.kube import config as kube_config
        from tui.kube.errors import KubeError
        from tui.kube.targets import list_pods, load_json, sidecar_of
    except ImportError as e:
        return f"Kubernetes layer not available ({e.name})"
    # The same file kube_config.load() reads. Passed explicitly: the kubernetes
    # package reads $KUBECONFIG once, at import, so a later change is missed.
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser(
        "~/.kube/config"
    )
    try:
        listed = list_kube_config_contexts(path)  # type: ignore[no-untyped-call]
        contexts = [str(c["name"]) for c in listed[0]][:MAX_CONTEXTS]
    except (ConfigException, OSError, TypeError, KeyError):
        contexts = [""]  # in-cluster, or a single default
    found: list[KubeChoice] = []
    errors: list[str] = []
    for ctx in contexts or [""]:
        try:
            cluster = kube_config.load(context=ctx or None)
        except KubeError as e:
            errors.append(str(e))
            continue
        try:
            pods = _pods_everywhere(cluster, load_json, list_pods)
        except KubeError as e:
            errors.append(f"{ctx or 'in-cluster'}: {e}")
            continue
        finally:
            cluster.close()
        for p in pods:
            if sidecar_of(p)[0]:
                meta = p.get("metadata") or {}
                found.append(
                    KubeChoice(f"pod/{meta.get('name')}", ctx or None, meta.get("namespace"))
                )
    if not found and errors:
        return errors[0]
    return found


def _pods_everywhere(cluster: Any, load_json: Any, list_pods: Any) -> list[dict[str, Any]]:
    """All namespaces when allowed, else the context's namespace (RBAC is often per namespace)."""
    from kubernetes.client.exceptions import ApiException

    try:
        doc = load_json(cluster.core().list_pod_for_all_namespaces, _request_timeout=LIST_TIMEOUT_S)
        return list(doc.get("items") or [])
    except ApiException as e:
        if e.status not in (403, 404):
            raise
    pods: list[dict[str, Any]] = list_pods(cluster, cluster.namespace)
    return pods


def parse_choice(text: str) -> Choice:
    """Typed text as a target: ``pod/NAME``, ``deploy/NAME`` or ``HOST:PORT``.

    Raises:
        AddressError: neither form; the message says how to write it.
    """
    kube = KubeChoice.from_recent(text)
    if kube is not None:
        return kube
    if text.startswith(("pod/", "po/", "deploy/", "deployment/")):
        return KubeChoice(text)
    host, port = parse_address(text)
    # A token is never carried over from another sidecar: $BORESCOPE_TOKEN or none.
    return Target(format_address(host, port), os.environ.get("BORESCOPE_TOKEN", ""))


class TargetPicker(ModalScreen[Choice | None]):
    """Choose the sidecar to look at. Dismisses with a Target or KubeChoice, or None."""

    DEFAULT_CSS = """
    TargetPicker { align: center middle; }
    TargetPicker > Vertical {
        width: 80; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $panel; padding: 0 1;
    }
    TargetPicker OptionList { height: auto; max-height: 12; }
    TargetPicker .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Keep the current target."),
    ]

    def __init__(self, current: str = "", discover: bool = True) -> None:
        super().__init__()
        self.current = current
        self.discover = discover
        self.recent = recent.load()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Switch target (now: {sanitize(self.current)})", markup=False)
            yield Input(placeholder="HOST:PORT or pod/NAME or deploy/NAME", id="address")
            yield Label("Recent", classes="hint")
            options = [Option(sanitize(_recent_label(a)), id=f"t:{a}") for a in self.recent]
            yield OptionList(*(options or [Option("(none yet)", disabled=True)]), id="recent")
            yield Label("Pods with the sidecar", classes="hint")
            yield OptionList(Option("looking…", disabled=True), id="pods")
            yield Label("enter: connect · tab: move · escape: cancel", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#address", Input).focus()
        if self.discover:
            self._list_pods()
        else:
            self._show_pods("pod discovery is off")

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _list_pods(self) -> None:
        found = discover_kube_targets()
        self.app.call_from_thread(self._show_pods, found)

    def _show_pods(self, found: list[KubeChoice] | str) -> None:
        pods = self.query_one("#pods", OptionList)
        pods.clear_options()
        if isinstance(found, str):
            pods.add_option(Option(sanitize(found), disabled=True))
            return
        if not found:
            pods.add_option(Option("(none found)", disabled=True))
        for choice in found:
            pods.add_option(Option(sanitize(choice.label), id=f"t:{choice.to_recent()}"))
        if found:
            pods.highlighted = 0  # enter after tab picks the first pod

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text and self.recent:
            text = self.recent[0]
        self._choose(text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        oid = event.option.id or ""
        if oid.startswith("t:"):
            self._choose(oid[2:])

    def _choose(self, text: str) -> None:
        try:
            choice = parse_choice(text)
        except AddressError as e:
            self.notify(sanitize_markup(f"{e} (or pod/NAME, deploy/NAME)"), severity="error")
            return
        self.dismiss(choice)

    def action_cancel(self) -> None:
        """Keep the current target."""
        self.dismiss(None)


def _recent_label(text: str) -> str:
    kube = KubeChoice.from_recent(text)
    return f"{kube.label} (port-forward)" if kube else text
