"""``borescope info``: the sidecar, its access, and the pod's containers."""

from __future__ import annotations

import argparse

from protos import info_pb2
from tui.cli.common import add_connection_args, add_output_arg, print_json, print_table, with_client
from tui.client import Client

KINDS = {0: "?", 1: "app", 2: "sidecar", 3: "infra"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("info", help="show the sidecar, its access and the pod's containers")
    add_connection_args(p)
    add_output_arg(p)
    p.set_defaults(func=with_client(run))


def run(args: argparse.Namespace, client: Client) -> int:
    info = client.info.GetInfo(
        info_pb2.GetInfoRequest(), timeout=args.timeout, metadata=client.metadata
    )
    if args.output == "json":
        print_json(info)
        return 0
    a = info.access
    print(
        f"pod {info.pod_name or '-'}  sidecar {info.sidecar_version} (api {info.api_version}) pid {info.sidecar_pid}"
    )
    print(
        f"access uid={a.uid} gid={a.gid} caps={','.join(a.capabilities) or 'none'} "
        f"openat2={'yes' if a.openat2 else 'no'} pidfd={'yes' if a.pidfd else 'no'}"
    )
    for line in a.limitations:
        print(f"  limited: {line}")
    print_table(
        ["ID", "NAME", "KIND", "ROOT PID", "PROCS", "ROOT"],
        [
            [
                c.id,
                c.name,
                KINDS.get(c.kind, "?"),
                c.root_process.pid,
                len(c.pids),
                "ok" if c.root_accessible else "no access",
            ]
            for c in info.containers
        ],
        right=(3, 4),
    )
    return 0
