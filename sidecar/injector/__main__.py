"""``python -m sidecar.injector``: run the mutating admission webhook.

Settings come from a JSON file (the chart mounts it from a ConfigMap), with
the image overridable by flag; the TLS pair from files (a Secret).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

import structlog

from sidecar.injector.cabundle import CaBundleKeeper
from sidecar.injector.mutate import Settings
from sidecar.injector.server import InjectorServer


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="borescope-injector", description=__doc__)
    p.add_argument("--listen", default=":8443", help="HOST:PORT (default :8443, every address)")
    p.add_argument("--tls-cert", required=True, help="PEM certificate (chain) file")
    p.add_argument("--tls-key", required=True, help="PEM private key file")
    p.add_argument("--settings", help="JSON file of injector settings")
    p.add_argument("--image", help="sidecar image (overrides the settings file)")
    p.add_argument("--own-namespace", default="", help="the injector's namespace")
    p.add_argument(
        "--webhook-config",
        default="",
        help="keep this MutatingWebhookConfiguration's caBundle equal to --ca-file",
    )
    p.add_argument("--ca-file", default="", help="PEM CA certificate for --webhook-config")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from sidecar.logconfig import configure_logging

    configure_logging()
    log = structlog.get_logger("borescope.injector")
    try:
        doc = {}
        if args.settings:
            with open(args.settings, encoding="utf-8") as f:
                doc = json.load(f)
        if args.image:
            doc["image"] = args.image
        if args.own_namespace:
            doc["own_namespace"] = args.own_namespace
        settings = Settings.from_json(doc)
        host, _, port = args.listen.rpartition(":")
        # The API server reaches the webhook through its Service: all addresses.
        address = (host or "0.0.0.0", int(port))  # noqa: S104
        server = InjectorServer(address, settings, args.tls_cert, args.tls_key)
    except (OSError, ValueError) as e:
        print(f"borescope-injector: {e}", file=sys.stderr)
        return 2
    keeper = None
    if args.webhook_config and args.ca_file:
        keeper = _start_keeper(args.webhook_config, args.ca_file)
        if keeper is not None:
            server.certs.on_reload = keeper.poke
    log.info(
        "listening", address=f"{host}:{server.port}", image=settings.image, profile=settings.profile
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutting down", signal=signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    if keeper is not None:
        keeper.stop()
    return 0


def _start_keeper(name: str, ca_file: str) -> CaBundleKeeper | None:
    """Start the caBundle keeper with in-cluster credentials (a private ApiClient)."""
    from kubernetes import client as k8s
    from kubernetes.config import ConfigException, load_incluster_config

    cfg = type.__call__(k8s.Configuration)
    try:
        load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException as e:
        structlog.get_logger("borescope.injector").warning(
            "not in a cluster: caBundle is not kept in step", error=str(e)
        )
        return None
    return CaBundleKeeper(k8s.ApiClient(configuration=cfg), name, ca_file).start()


if __name__ == "__main__":
    sys.exit(main())
