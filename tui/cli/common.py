"""What every CLI command shares: connection flags, output, error handling."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from tui.address import AddressError
from tui.client import Client, ConnectError, Target, describe_rpc_error
from tui.sanitize import sanitize

EXIT_OK = 0
EXIT_RPC = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to print as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_RPC) -> None:
        super().__init__(message)
        self.code = code


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """--addr / --token (also BORESCOPE_ADDR / BORESCOPE_TOKEN), or a Kubernetes target.

    ``--target pod/NAME[/CONTAINER]``, ``--target deploy/NAME`` or
    ``-l key=value`` (with ``--context``, ``-n``, ``--kubeconfig``) reach the
    sidecar through a port-forward instead of ``--addr``; ``--addr pod/NAME``
    and ``BORESCOPE_TARGET`` work too (no HOST:PORT contains a '/').
    """
    # A command may have its own -n or -l (a line count, a long listing).
    # Before this call: we leave the short flag to it. After: "resolve" lets
    # it take the short flag over, and --namespace/--selector stay. (argparse
    # keeps both in attributes without a public accessor.)
    taken = {flag for action in p._actions for flag in action.option_strings}
    p.conflict_handler = "resolve"
    p._optionals.conflict_handler = "resolve"
    p.add_argument(
        "--addr",
        action=_JoinAction,
        help="sidecar address HOST:PORT (default: $BORESCOPE_ADDR); repeat it or separate "
        "addresses with commas to ask several sidecars at once (fleet mode)",
    )
    p.add_argument("--token", help="bearer token (default: $BORESCOPE_TOKEN)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-call timeout in seconds")
    k = p.add_argument_group("kubernetes (port-forward instead of --addr)")
    k.add_argument(
        "--target",
        metavar="TARGET",
        help="pod/NAME[/CONTAINER] or deploy/NAME (default: $BORESCOPE_TARGET)",
    )
    k.add_argument(
        *[f for f in ("-l", "--selector") if f not in taken],
        help="label selector picking the pod, e.g. app=web",
    )
    k.add_argument(
        *[f for f in ("-n", "--namespace") if f not in taken],
        help="namespace (default: the context's)",
    )
    k.add_argument("--context", help="kubeconfig context (default: the current one)")
    k.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    f = p.add_argument_group(
        "fleet (several --addr, or deploy/NAME and -l matching several pods: every pod is asked)"
    )
    f.add_argument(
        "--fleet-concurrency",
        type=int,
        metavar="N",
        help="pods asked at once (default 32); with -f, every pod needs one stream",
    )
    f.add_argument(
        "--fleet-max-pods",
        type=int,
        metavar="N",
        help="refuse to ask more pods than this (default 256)",
    )
    f.add_argument(
        "--fleet-top", type=int, metavar="N", help="ps: rows of the merged table (default 50)"
    )


class _JoinAction(argparse.Action):
    """Repeated values joined by commas: one value stays the plain string it always was."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        old = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{old},{values}" if old else values)


def add_output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")


def kube_target_of(args: argparse.Namespace) -> str:
    """The Kubernetes target ``args`` name ("" = connect directly by address)."""
    target = getattr(args, "target", None) or ""
    addr = getattr(args, "addr", None) or ""
    if not target and "/" in addr:
        target = addr
    if not target and not addr and not getattr(args, "selector", None):
        env_target = os.environ.get("BORESCOPE_TARGET", "")
        if env_target and not os.environ.get("BORESCOPE_ADDR"):
            target = env_target
    return target


def connect(args: argparse.Namespace) -> Client:
    """A ready client for ``args``, or CliError with exit code 2."""
    target_text = kube_target_of(args)
    if target_text or getattr(args, "selector", None):
        return _connect_kube(args, target_text)
    try:
        target = Target.from_env(args.addr, args.token)
    except AddressError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    client = Client(target)
    try:
        client.wait_ready(timeout=min(args.timeout, 5.0))
    except ConnectError as e:
        client.close()
        raise CliError(str(e), EXIT_USAGE) from None
    return client


@contextlib.contextmanager
def forwarded_target(
    args: argparse.Namespace, on_kube: Callable[[Client], None] | None = None
) -> Iterator[Target]:
    """The Target for ``args``: as given, or a port-forward kept up while inside.

    For commands that build their own Client (``borescope tui``)::

        with forwarded_target(args) as target:
            return launch(target)

    ``on_kube`` is called with the port-forward's client (a ``KubeClient``:
    its ``cluster`` and ``pod``) when the target is reached through Kubernetes.

    Raises:
        CliError: bad address, or the Kubernetes target cannot be reached (exit 2).
    """
    target_text = kube_target_of(args)
    if not (target_text or getattr(args, "selector", None)):
        try:
            direct = Target.from_env(args.addr, args.token)
        except AddressError as e:
            raise CliError(str(e), EXIT_USAGE) from None
        yield direct
        return
    client = _connect_kube(args, target_text)
    try:
        if on_kube is not None:
            on_kube(client)
        yield client.target
    finally:
        client.close()


def _connect_kube(args: argparse.Namespace, target_text: str) -> Client:
    # Imported here: the kubernetes package costs ~0.5 s of start-up that
    # direct connections should not pay.
    from tui.kube.connect import KubeOptions, open_client
    from tui.kube.errors import KubeError
    from tui.kube.targets import parse_target

    try:
        spec = parse_target(target_text, getattr(args, "selector", None) or "")
        client = open_client(
            spec,
            KubeOptions(args.context, args.namespace, args.kubeconfig),
            token=args.token or os.environ.get("BORESCOPE_TOKEN", ""),
        )
    except KubeError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    try:
        client.wait_ready(timeout=min(args.timeout, 10.0))
    except ConnectError as e:
        client.close()
        raise CliError(str(e), EXIT_USAGE) from None
    return client


def with_client(
    run: Callable[[argparse.Namespace, Client], int],
) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: connect, run, close; map gRPC errors to one line."""

    def func(args: argparse.Namespace) -> int:
        fleet = _fleet_of(args)
        if fleet is not None:
            from tui.fleet.cli import run_fleet

            return run_fleet(args, fleet, run)
        client = connect(args)
        try:
            return run(args, client)
        except grpc.RpcError as e:
            raise CliError(describe_rpc_error(e)) from None
        finally:
            client.close()

    return func


def _fleet_of(args: argparse.Namespace) -> Any:
    """The fleet ``args`` name (several sidecars), or None for the single-target path."""
    from tui.fleet.members import FleetError, resolve_fleet

    try:
        return resolve_fleet(args)
    except FleetError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def to_dict(msg: Message) -> dict[str, Any]:
    """A message as JSON-ready dict (field names as in the proto)."""
    return MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(obj: Any) -> None:
    """One JSON document on stdout (messages converted)."""
    if isinstance(obj, Message):
        obj = to_dict(obj)
    elif isinstance(obj, list) and obj and isinstance(obj[0], Message):
        obj = [to_dict(m) for m in obj]
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def print_json_line(obj: Any) -> None:
    """One compact JSON object per line (for streams)."""
    if isinstance(obj, Message):
        obj = to_dict(obj)
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()
) -> None:
    """A plain aligned table; cells are sanitised (no terminal escapes pass)."""
    cells = [[sanitize(str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(c))

    def fmt(row: Sequence[str]) -> str:
        parts = []
        for i, c in enumerate(row):
            if i == len(row) - 1:
                parts.append(c)
            elif i in right:
                parts.append(c.rjust(widths[i]))
            else:
                parts.append(c.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [fmt(list(headers))] + [fmt(r) for r in cells]
    sys.stdout.write("\n".join(out) + "\n")
