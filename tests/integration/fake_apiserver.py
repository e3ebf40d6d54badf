"""A local HTTP server speaking the Kubernetes API's real shapes (the outer edge).

Only the edge is fake: paths, query parameters, JSON bodies, metav1.Status
errors (401/403/404/422), chunked ``follow`` log streams with RFC3339Nano
timestamps, strategic-merge patches of ``pods/ephemeralcontainers``, and the
websocket subprotocols the kubelet speaks: ``v4.channel.k8s.io`` for
port-forward (two channels per port, each opened with a 2-byte little-endian
port frame, the error channel carrying text) and for exec (0 stdin, 1 stdout,
2 stderr, 3 a Status when the process ends, 4 resize). Port-forward dials a
real TCP address (a real sidecar); exec runs a real process on a real pty.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpatch
import jsonpointer

from tests.integration.fake_apiserver_objects import (
    EPHEMERAL_FORBIDDEN,
    Json,
    State,
    kubeconfig_doc,
    make_pod,
    matches,
    parse_time,
    rfc3339,
    rfc3339nano,
    status,
    with_ephemeral_status,
)
from tests.integration.fake_apiserver_ws import WebSocket, accept_key, bridge, run_exec

__all__ = ["FakeApiServer", "State", "make_pod", "rfc3339", "rfc3339nano"]
SMP = "application/strategic-merge-patch+json"


class Handler(BaseHTTPRequestHandler):
    server: FakeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing --------------------------------------------------------
    def _send_json(self, code: int, doc: Json) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, code: int, reason: str, message: str, details: Json | None = None) -> None:
        self._send_json(code, status(code, reason, message, details))

    def _route(self, method: str) -> None:
        st = self.server.state
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        st.requests.append(
            {
                "time": time.monotonic(),
                "method": method,
                "path": url.path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        if self.headers.get("Authorization") != f"Bearer {st.token}":
            self._fail(401, "Unauthorized", "Unauthorized")
            return
        wh = re.fullmatch(
            r"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/([^/]+)", url.path
        )
        if wh:
            self._webhook_config(method, wh.group(1), body)
            return
        m = re.fullmatch(
            r"/api/v1/namespaces/([^/]+)/(pods|secrets)(?:/([^/]+))?(?:/([a-z]+))?", url.path
        ) or re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/(deployments)/([^/]+)", url.path)
        if not m:
            self._fail(404, "NotFound", "the server could not find the requested resource")
            return
        ns, kind, name, sub = (*m.groups(), None)[:4]
        verb = {"GET": "get" if name else "list", "PATCH": "patch"}.get(method, method.lower())
        if sub in ("portforward", "exec"):
            verb = "create"
        resource = f"{kind}/{sub}" if sub else kind
        if (verb, resource) in st.forbidden:
            group = "apps" if kind == "deployments" else ""
            self._fail(
                403,
                "Forbidden",
                f'{kind} "{name}" is forbidden: User "dev" cannot {verb} resource "{resource}" '
                f'in API group "{group}" in the namespace "{ns}"',
                {"name": name or "", "kind": kind},
            )
            return
        handler = getattr(self, f"_{method.lower()}_{kind}", None)
        if handler is None:
            self._fail(405, "MethodNotAllowed", f"{method} is not supported on {kind}")
            return
        handler(ns, name, sub, query, body)

    def do_GET(self) -> None:
        self._route("GET")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    # --- resources -------------------------------------------------------
    def _get_pods(
        self, ns: str, name: str | None, sub: str | None, q: dict[str, list[str]], _b: bytes
    ) -> None:
        st = self.server.state
        if name is None:
            sel = q.get("labelSelector", [""])[0]
            items = [p for (pns, _), p in sorted(st.pods.items()) if pns == ns and matches(p, sel)]
            self._send_json(
                200,
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1000"},
                    "items": items,
                },
            )
            return
        pod = st.pods.get((ns, name))
        if pod is None:
            self._fail(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
            return
        if sub is None:
            self._send_json(200, with_ephemeral_status(pod, st.ephemeral_start_s))
        elif sub == "log":
            self._log(ns, name, pod, q)
        elif sub == "portforward":
            self._portforward(ns, name, q)
        elif sub == "exec":
            self._exec(q)
        else:
            self._fail(404, "NotFound", "the server could not find the requested resource")

    def _get_secrets(self, ns: str, name: str | None, *_: Any) -> None:
        secret = self.server.state.secrets.get((ns, name or ""))
        if secret is None:
            self._fail(
                404, "NotFound", f'secrets "{name}" not found', {"name": name, "kind": "secrets"}
            )
            return
        self._send_json(200, secret)

    def _get_deployments(self, ns: str, name: str | None, *_: Any) -> None:
        dep = self.server.state.deployments.get((ns, name or ""))
        if dep is None:
            self._fail(
                404,
                "NotFound",
                f'deployments.apps "{name}" not found',
                {"name": name, "kind": "deployments"},
            )
            return
        self._send_json(200, dep)

    def _patch_pods(self, ns: str, name: str | None, sub: str | None, _q: Any, body: bytes) -> None:
        st = self.server.state
        if sub != "ephemeralcontainers":
            self._fail(405, "MethodNotAllowed", "only pods/ephemeralcontainers is patchable here")
            return
        ctype = self.headers.get("Content-Type", "")
        if ctype != SMP:
            self._fail(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {SMP}",
            )
            return
        pod = st.pods.get((ns, name or ""))
        if pod is None:
            self._fail(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
            return
        patch = json.loads(body)
        existing = {c["name"]: c for c in pod["spec"].get("ephemeralContainers", [])}
        for c in (patch.get("spec") or {}).get("ephemeralContainers") or []:
            bad = [k for k in EPHEMERAL_FORBIDDEN if k in c]
            if bad:
                self._fail(
                    422,
                    "Invalid",
                    f'Pod "{name}" is invalid: spec.ephemeralContainers[0].{bad[0]}: Forbidden: cannot be set for an Ephemeral Container',
                )
                return
            target = c.get("targetContainerName")
            if target and target not in [x["name"] for x in pod["spec"]["containers"]]:
                self._fail(
                    422,
                    "Invalid",
                    f'Pod "{name}" is invalid: spec.ephemeralContainers[0].targetContainerName: Not found: "{target}"',
                )
                return
            if c["name"] in existing and existing[c["name"]] != c:
                self._fail(
                    422,
                    "Invalid",
                    f'Pod "{name}" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "{c["name"]}" may not be changed',
                )
                return
            if c["name"] not in existing:
                pod["spec"].setdefault("ephemeralContainers", []).append(copy.deepcopy(c))
                pod.setdefault("_ephemeral_added", {})[c["name"]] = time.time()
                if st.on_ephemeral is not None:
                    # The "kubelet" starts the container: the test runs a real
                    # sidecar with the container's env and says where it listens.
                    address = st.on_ephemeral(ns, name or "", c)
                    if address:
                        st.pod_addresses[(ns, name or "")] = address
        self._send_json(200, with_ephemeral_status(pod, st.ephemeral_start_s))

    def _webhook_config(self, method: str, name: str, body: bytes) -> None:
        st = self.server.state
        verb = "get" if method == "GET" else "patch"
        if (verb, "mutatingwebhookconfigurations") in st.forbidden:
            self._fail(
                403,
                "Forbidden",
                f'mutatingwebhookconfigurations.admissionregistration.k8s.io "{name}" is forbidden: '
                f'User "system:serviceaccount:borescope:bs-borescope-injector" cannot {verb} resource '
                '"mutatingwebhookconfigurations" in API group "admissionregistration.k8s.io" at the cluster scope',
            )
            return
        doc = st.webhook_configs.get(name)
        if doc is None:
            self._fail(
                404,
                "NotFound",
                f'mutatingwebhookconfigurations.admissionregistration.k8s.io "{name}" not found',
            )
            return
        if method == "PATCH":
            if self.headers.get("Content-Type") != "application/json-patch+json":
                self._fail(415, "UnsupportedMediaType", "expected application/json-patch+json")
                return
            try:
                doc = jsonpatch.apply_patch(doc, json.loads(body))
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                self._fail(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: {e}",
                )
                return
            doc["metadata"]["resourceVersion"] = str(int(doc["metadata"]["resourceVersion"]) + 1)
            st.webhook_configs[name] = doc
        self._send_json(200, doc)

    # --- streaming -------------------------------------------------------
    def _log(self, ns: str, name: str, pod: Json, q: dict[str, list[str]]) -> None:
        st = self.server.state
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = q.get("container", [""])[0]
        if not container:
            if len(names) > 1:
                self._fail(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]",
                )
                return
            container = names[0]
        previous = q.get("previous", ["false"])[0] == "true"
        follow = q.get("follow", ["false"])[0] == "true"
        stamps = q.get("timestamps", ["false"])[0] == "true"
        since = parse_time(q["sinceTime"][0]) if "sinceTime" in q else None
        key = (ns, name, container, previous)
        if key not in st.logs and previous:
            self._fail(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{name}" not found',
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        with st.lock:
            generation = st.log_generation
        while True:
            with st.lock:
                lines = st.logs.get(key, [])[sent:]
                sent += len(lines)
            out = b""
            for t, line in lines:
                if since is not None and t < since:  # the kubelet's filter is inclusive
                    continue
                out += (
                    (f"{rfc3339nano(t)} " if stamps else "").encode()
                    + line.encode("utf-8", "surrogateescape")
                    + b"\n"
                )
            try:
                if out:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(out), out))
                    self.wfile.flush()
                if not follow:
                    break
                with st.lock:
                    if st.log_generation != generation:
                        break
                    if len(st.logs.get(key, [])) == sent:
                        st.lock.wait(0.2)
                    if st.log_generation != generation:
                        break
            except (BrokenPipeError, ConnectionResetError):
                return
        with contextlib.suppress(OSError):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        self.close_connection = True

    def _upgrade(self, offered_ok: tuple[str, ...]) -> str | None:
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        proto = next((p for p in offered if p in offered_ok), None)
        if self.headers.get("Upgrade", "").lower() != "websocket" or proto is None:
            self._fail(400, "BadRequest", "Upgrade request required")
            return None
        key = self.headers["Sec-WebSocket-Key"]
        accept = accept_key(key)
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", proto)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        return proto

    def _portforward(self, ns: str, name: str, q: dict[str, list[str]]) -> None:
        st = self.server.state
        ports = [int(p) for p in ",".join(q.get("ports", [])).split(",") if p]
        if len(ports) != 1:
            self._fail(400, "BadRequest", 'query parameter "port" is required')
            return
        if self._upgrade(("v4.channel.k8s.io",)) is None:
            return
        port = ports[0]
        # Go's net package (the real API server and kubelet) sets TCP_NODELAY;
        # without it small frames wait ~40 ms for delayed ACKs.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ws = WebSocket(self.connection)
        ws.send(b"\x00" + struct.pack("<H", port))
        ws.send(b"\x01" + struct.pack("<H", port))
        self.server.state.requests[-1]["upgraded"] = True
        address = st.pod_addresses.get((ns, name)) or f"127.0.0.1:{port}"
        host, _, dial_port = address.rpartition(":")
        try:
            tcp = socket.create_connection((host, int(dial_port)), 2)
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            # What the kubelet writes on the port's error channel when the dial fails.
            ws.send(
                b"\x01"
                + f"an error occurred forwarding {port} -> {port}: error forwarding port {port} "
                f"to pod {name}: dial tcp4 127.0.0.1:{port}: connect: {(e.strerror or str(e)).lower()}".encode()
            )
            ws.close()
            return
        bridge(ws, tcp, self.server.stopping)

    def _exec(self, q: dict[str, list[str]]) -> None:
        if self._upgrade(("v5.channel.k8s.io", "v4.channel.k8s.io")) is None:
            return
        run_exec(
            WebSocket(self.connection), q, self.server.state.requests[-1].setdefault("resizes", [])
        )


class FakeApiServer(ThreadingHTTPServer):
    """The fake API server on 127.0.0.1:<free port>."""

    daemon_threads = True

    def __init__(
        self, token: str = "test-token-1", tls: tuple[str, str, str] | None = None
    ) -> None:
        """Args: token (the bearer token it accepts); tls: (cert, key, CA) files to serve HTTPS."""
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = State(token)
        self.stopping = threading.Event()
        self.ca_file = ""
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(tls[0], tls[1])
            self.ca_file = tls[2]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self._tls is None:
            return sock, addr
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that failed the TLS handshake (the wrong-CA test) is expected

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.state.drop_log_streams()
        self.shutdown()
        self.server_close()

    def kubeconfig(self, path: str, namespace: str = "default", context: str = "fake") -> str:
        """Write a kubeconfig for this server (token auth, its CA if HTTPS); return its path."""
        doc = kubeconfig_doc(self.url, self.state.token, self.ca_file, namespace, context)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path
