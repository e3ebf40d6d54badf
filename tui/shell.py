"""Open a shell in the sidecar container from the TUI (``S``), like ``borescope shell``.

The TUI suspends itself (the terminal goes back to cooked mode), runs the
exec session on this terminal, and resumes when the shell exits. Only a
connection made through Kubernetes knows the pod and its sidecar container;
a direct connection gets a notice saying what to run instead.
"""

from __future__ import annotations

from typing import Any

from textual.app import App, SuspendNotSupported

NO_KUBE = (
    "A shell needs a connection through Kubernetes (borescope tui --target pod/NAME); "
    "for a direct connection run a shell in the sidecar container yourself."
)


def open_shell(app: App[Any], kube_pod: tuple[Any, Any] | None) -> None:
    """Suspend ``app``, run a shell in the pod's sidecar, resume and notify the outcome."""
    if kube_pod is None:
        app.notify(NO_KUBE, title="Shell", severity="warning", timeout=8)
        return
    from tui.kube.errors import KubeError
    from tui.kube.shell import run_shell

    cluster, pod = kube_pod
    where = f"{pod.namespace}/{pod.pod}"
    try:
        with app.suspend():
            print(
                f"borescope: shell in the {pod.sidecar} container of {where} "
                "(borescope-enter PID: a shell in that process's root); exit to return to the TUI",
                flush=True,
            )
            code = run_shell(cluster, pod)
    except SuspendNotSupported:
        app.notify(
            f"This terminal cannot suspend the TUI; run: borescope shell pod/{pod.pod} "
            f"-n {pod.namespace}",
            title="Shell",
            severity="warning",
        )
    except (KubeError, OSError) as e:
        app.notify(str(e), title="Shell", severity="error", timeout=10)
    else:
        app.notify(f"the shell in {where} exited with status {code}", title="Shell")
