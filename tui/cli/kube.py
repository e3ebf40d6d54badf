"""Kubernetes commands: ``pods`` (discovery), ``attach`` (ephemeral sidecar), ``shell``.

Every failure is one line (RBAC refusals name the verb and resource that are
missing) and exit code 2; the kubernetes package is imported only when one
of these commands runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from tui.cli.common import EXIT_USAGE, CliError, print_json, print_table


def _kube_args(p: argparse.ArgumentParser, selector: bool = False) -> None:
    p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    if selector:
        p.add_argument("-l", "--selector", help="label selector, e.g. app=web")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds ``pods``, ``attach`` and ``shell``."""
    p = sub.add_parser(
        "pods",
        help="list pods and whether they carry the borescope sidecar",
        description="Pods that carry the sidecar (injected, static or attached), and those that don't.",
    )
    _kube_args(p, selector=True)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=run_pods)

    p = sub.add_parser(
        "attach",
        help="add the sidecar to a running pod (ephemeral container) and open the TUI",
        description=(
            "Add borescope to a running pod as an ephemeral container (no restart), "
            "wait for it, port-forward and open the TUI. Needs patch on "
            "pods/ephemeralcontainers and create on pods/portforward."
        ),
    )
    p.add_argument("target", help="pod/NAME[/CONTAINER] (or deploy/NAME: one of its pods)")
    _kube_args(p)
    p.add_argument("--target-container", help="the app container to share processes with")
    p.add_argument(
        "--profile",
        choices=("restricted", "general"),
        default="restricted",
        help="restricted: the app's UID, no capabilities (default); general: root + SYS_PTRACE",
    )
    p.add_argument("--image", help="borescope image (default: $BORESCOPE_IMAGE or the release's)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it to run")
    p.add_argument(
        "--no-tui",
        action="store_true",
        help="only port-forward and print the address and token (Ctrl-C stops)",
    )
    p.set_defaults(func=run_attach)

    p = sub.add_parser(
        "shell",
        help="an interactive shell in the pod's borescope sidecar (exec)",
        description="Open a shell in the sidecar container (needs create on pods/exec).",
    )
    p.add_argument("target", help="pod/NAME or deploy/NAME")
    _kube_args(p)
    p.add_argument("command", nargs="*", help="command to run instead of /bin/sh (after --)")
    p.set_defaults(func=run_shell)


def _cluster(args: argparse.Namespace) -> Any:
    from tui.kube import config

    return config.load(args.context, args.namespace, args.kubeconfig)


def _age(created: str) -> str:
    try:
        then = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "?"
    s = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{max(s, 0)}s"


def run_pods(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from tui.kube.errors import KubeError, explain
    from tui.kube.targets import is_ready, list_pods, load_json, sidecar_of

    try:
        cluster = _cluster(args)
        ns = args.namespace or cluster.namespace
        if args.all_namespaces:
            try:
                doc = load_json(
                    cluster.core().list_pod_for_all_namespaces, label_selector=args.selector or None
                )
            except ApiException as e:
                raise explain(e, "list", "pods", "(all)") from None
            pods = list(doc.get("items") or [])
        else:
            pods = list_pods(cluster, ns, args.selector or "")
    except KubeError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    rows = []
    for p in pods:
        meta, status = p.get("metadata") or {}, p.get("status") or {}
        name, kind, port = sidecar_of(p)
        labelled = str((meta.get("labels") or {}).get("borescope.io/inject", "")).lower() == "true"
        rows.append(
            {
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name", ""),
                "ready": is_ready(p),
                "phase": status.get("phase", ""),
                "sidecar": kind or "",
                "container": name,
                "port": port,
                "age": _age(str(meta.get("creationTimestamp", ""))),
                # Asked for the sidecar but did not get it: the webhook did not
                # run (injector down with failurePolicy Ignore, or the pod is
                # older than the install).
                "not_injected": labelled and not kind,
            }
        )
    if args.output == "json":
        print_json(rows)
        return 0
    headers = ["NAMESPACE", "NAME", "STATUS", "SIDECAR", "PORT", "AGE"]
    print_table(
        headers,
        [
            [
                r["namespace"],
                r["name"],
                ("Ready" if r["ready"] else r["phase"]),
                r["sidecar"] or ("MISSING" if r["not_injected"] else "-"),
                r["port"] or "",
                r["age"],
            ]
            for r in rows
        ],
    )
    skipped = [r["name"] for r in rows if r["not_injected"]]
    if skipped:
        print(
            f"labelled borescope.io/inject=true but not injected: {', '.join(skipped)}: the "
            "webhook did not run for them (injector down? pods older than the install?); "
            "check the injector's logs, or restart the pods",
            file=sys.stderr,
        )
    missing = [r for r in rows if not r["sidecar"]]
    if missing:
        print(
            f"{len(missing)} of {len(rows)} pods have no sidecar: label the pod template "
            "borescope.io/inject=true, or run: borescope attach pod/NAME",
            file=sys.stderr,
        )
    elif not rows:
        print(
            f"no pods in namespace {ns}" + (f" match {args.selector}" if args.selector else ""),
            file=sys.stderr,
        )
    return 0


def run_attach(args: argparse.Namespace) -> int:
    import os

    from tui.client import Target
    from tui.kube.attach import DEFAULT_IMAGE, attach
    from tui.kube.errors import KubeError
    from tui.kube.portforward import Forwarder
    from tui.kube.targets import parse_target, resolve

    def progress(text: str) -> None:
        print(f"borescope: {text}", file=sys.stderr, flush=True)

    try:
        cluster = _cluster(args)
        spec = parse_target(args.target)
        ns = args.namespace or cluster.namespace
        pod = resolve(cluster, spec, ns) if spec.kind != "pod" else None
        pod_name = pod.pod if pod is not None else spec.name
        target, token, notes = attach(
            cluster,
            ns,
            pod_name,
            target_container=args.target_container or spec.container,
            profile=args.profile,
            image=args.image or os.environ.get("BORESCOPE_IMAGE", DEFAULT_IMAGE),
            timeout=args.timeout,
            progress=progress,
        )
    except KubeError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    for note in notes:
        progress(note)
    with Forwarder(cluster, target) as fwd:
        progress(
            f"{target.sidecar} is running; forwarding {fwd.address} -> {target.pod}:{target.port}"
        )
        if args.no_tui:
            print(f"BORESCOPE_ADDR={fwd.address}")
            print(f"BORESCOPE_TOKEN={token}", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        from tui.cli.tui_cmd import launch

        return launch(Target(fwd.address, token), timeout=15.0, kube_pod=(cluster, target))


def run_shell(args: argparse.Namespace) -> int:
    from tui.kube.errors import KubeError
    from tui.kube.shell import DEFAULT_COMMAND
    from tui.kube.shell import run_shell as shell
    from tui.kube.targets import parse_target, resolve

    try:
        cluster = _cluster(args)
        target = resolve(cluster, parse_target(args.target), args.namespace or cluster.namespace)
        if not target.sidecar:
            raise KubeError(
                f"pod {target.pod} has no borescope sidecar: run 'borescope attach pod/{target.pod}' first"
            )
        return shell(cluster, target, args.command or DEFAULT_COMMAND)
    except KubeError as e:
        raise CliError(str(e), EXIT_USAGE) from None
