"""Probes from the pod's network namespace against servers the test starts inside it.

The servers (a DNS responder on 127.0.0.1:53, a silent UDP port, HTTP, HTTPS
with a self-signed certificate, and a TCP server that accepts and never
answers) run in the test's namespace, so a probe that reached them proves it
ran from the pod's namespace, not the sidecar's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from protos import network_pb2
from sidecar.config import Config
from tests.integration.test_network_netns import NetnsPod, make_netns_pod

SERVERS = r"""
import http.server, json, socket, ssl, struct, sys, threading
cert, key = sys.argv[1], sys.argv[2]
def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 53))
    while True:
        q, peer = s.recvfrom(512)
        qid, = struct.unpack("!H", q[:2])
        end = q.index(b"\0", 12) + 5
        labels, i = [], 12
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode()); i += q[i] + 1
        name = ".".join(labels)
        known = {"svc.example.test": bytes([10, 1, 2, 3]), "web.example.test": bytes([127, 0, 0, 1])}
        qtype = struct.unpack("!H", q[end - 4:end - 2])[0]
        if name in known and qtype == 1:
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + known[name]
            s.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q[12:end] + ans, peer)
        elif name in known:
            s.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0) + q[12:end], peer)
        else:
            s.sendto(struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + q[12:end], peer)
silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); silent.bind(("127.0.0.1", 0))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the pod " + self.path.encode()
        self.send_response(200); self.send_header("X-Probe", "yes")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
stall = socket.socket(); stall.bind(("127.0.0.1", 0)); stall.listen(8)
held = []
def stall_loop():
    while True:
        held.append(stall.accept()[0])
for f in (dns, web.serve_forever, tls.serve_forever, stall_loop):
    threading.Thread(target=f, daemon=True).start()
print(json.dumps({"silent": silent.getsockname()[1], "http": web.server_address[1],
                  "https": tls.server_address[1], "stall": stall.getsockname()[1]}), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def probe_pod(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NetnsPod, dict[str, int]]]:
    """The test namespace with probe servers running in it; probes on, at most 2 at once."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl CLI to make a self-signed certificate")
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=bs-probe.test/O=borescope tests",
         "-addext", "subjectAltName=DNS:bs-probe.test,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for pod in make_netns_pod(Config(allow_probes=True, probe_concurrency=2)):
        _proc, line = pod.spawn(SERVERS, str(d / "cert.pem"), str(d / "key.pem"))
        yield pod, json.loads(line)


def call(pod: NetnsPod, method: str, **kw: object) -> object:
    c = pod.sidecar.client
    req = getattr(network_pb2, f"{method}Request")(**kw)
    return getattr(c.network, method)(req, metadata=c.metadata, timeout=15)


def test_dns_uses_the_targets_resolv_conf(probe_pod: tuple[NetnsPod, dict[str, int]]) -> None:
    """A DNS probe asks the nameserver from the target's resolv.conf (in the pod's namespace),
    expands the search list, and reports the answer, rcode and latency."""
    pod, _ = probe_pod
    resp = call(pod, "ProbeDns", name="svc")
    assert isinstance(resp, network_pb2.ProbeDnsResponse)
    [answer] = resp.answers
    assert answer.nameserver == "127.0.0.1"
    assert (list(answer.addresses), answer.rcode, answer.error) == (["10.1.2.3"], "NOERROR", "")
    assert 0 < answer.latency_ms < 2000
    assert list(resp.search_tried) == ["svc.example.test", "svc"]  # ndots:2: search first


def test_dns_nxdomain_timeout_and_refusal_per_server(
    probe_pod: tuple[NetnsPod, dict[str, int]],
) -> None:
    """Each nameserver is reported on its own: one answers NXDOMAIN, a silent one times out,
    a closed port is refused; the slow one does not hide the others."""
    pod, ports = probe_pod
    start = time.monotonic()
    resp = call(
        pod, "ProbeDns", name="nope.example.test.", timeout_ms=700,
        nameservers=["127.0.0.1", f"127.0.0.1:{ports['silent']}", "127.0.0.1:9"],
    )  # fmt: skip
    assert time.monotonic() - start < 3.0  # servers asked in parallel, each bounded
    by = {a.nameserver: a for a in resp.answers}  # type: ignore[attr-defined]
    assert by["127.0.0.1"].rcode == "NXDOMAIN" and not by["127.0.0.1"].addresses
    assert by[f"127.0.0.1:{ports['silent']}"].error == "timeout after 700 ms"
    assert by["127.0.0.1:9"].error == "connection refused"


def test_tcp_connect_latency_refusal_and_blackhole(
    probe_pod: tuple[NetnsPod, dict[str, int]],
) -> None:
    """TCP probes report latency when the port answers, 'connection refused' when closed,
    and a timeout (within its bound) when the packets go nowhere."""
    pod, ports = probe_pod
    ok = call(pod, "ProbeTcp", host="127.0.0.1", port=ports["http"])
    assert ok.connected and ok.resolved_address == "127.0.0.1" and ok.latency_ms > 0  # type: ignore[attr-defined]
    # The app's own listener exists only in the pod's namespace: reaching it proves where we probed from.
    assert call(pod, "ProbeTcp", host="::1", port=pod.info["tcp6"]).connected  # type: ignore[attr-defined]
    refused = call(pod, "ProbeTcp", host="127.0.0.1", port=9)
    assert not refused.connected and refused.error == "connection refused"  # type: ignore[attr-defined]
    start = time.monotonic()
    hole = call(pod, "ProbeTcp", host="10.78.0.5", port=80, timeout_ms=400)
    assert not hole.connected and hole.error == "timeout after 400 ms"  # type: ignore[attr-defined]
    assert time.monotonic() - start < 3.0


def test_http_get_status_headers_and_body(probe_pod: tuple[NetnsPod, dict[str, int]]) -> None:
    """HTTP GET returns status, version, headers and the first bytes of the body (bounded)."""
    pod, ports = probe_pod
    resp = call(
        pod, "ProbeHttp", url=f"http://127.0.0.1:{ports['http']}/healthz?x=1", max_body_bytes=24
    )
    assert isinstance(resp, network_pb2.ProbeHttpResponse)
    assert (resp.status, resp.http_version, resp.error) == (200, "HTTP/1.0", "")
    assert {h.name: h.value for h in resp.headers}["X-Probe"] == "yes"
    assert resp.body_prefix == b"hello from the pod /heal"  # 24 bytes, not the whole body
    assert not resp.HasField("certificate")


def test_https_self_signed_certificate_summary(probe_pod: tuple[NetnsPod, dict[str, int]]) -> None:
    """A self-signed HTTPS server: the probe refuses to GET without 'insecure' but still returns
    the certificate (subject, issuer, SANs, expiry, verify error); with 'insecure' it GETs."""
    pod, ports = probe_pod
    url = f"https://127.0.0.1:{ports['https']}/"
    strict = call(pod, "ProbeHttp", url=url)
    assert isinstance(strict, network_pb2.ProbeHttpResponse)
    assert strict.status == 0 and "certificate verify failed" in strict.error
    cert = strict.certificate
    assert cert.subject == "CN=bs-probe.test, O=borescope tests" and cert.issuer == cert.subject
    assert list(cert.sans) == ["bs-probe.test", "IP Address:127.0.0.1"]
    assert not cert.verified and "self" in cert.verify_error
    assert 0 < cert.not_after.seconds - time.time() < 3 * 86400
    loose = call(pod, "ProbeHttp", url=url, insecure=True)
    assert loose.status == 200 and loose.certificate.subject == cert.subject  # type: ignore[attr-defined]


def test_http_timeout_and_refusal(probe_pod: tuple[NetnsPod, dict[str, int]]) -> None:
    """A server that accepts and never answers times out within the probe's bound; a closed port is refused."""
    pod, ports = probe_pod
    start = time.monotonic()
    stalled = call(pod, "ProbeHttp", url=f"http://127.0.0.1:{ports['stall']}/", timeout_ms=500)
    assert stalled.status == 0 and stalled.error == "timeout after 500 ms"  # type: ignore[attr-defined]
    assert time.monotonic() - start < 3.0
    refused = call(pod, "ProbeHttp", url="http://127.0.0.1:9/")
    assert refused.error == "connection refused"  # type: ignore[attr-defined]


def test_host_names_resolve_with_the_targets_config(
    probe_pod: tuple[NetnsPod, dict[str, int]],
) -> None:
    """TCP and HTTP probes resolve names as the app would: its /etc/hosts first, then its
    resolv.conf's nameserver with the search list (the host's resolver knows neither name)."""
    pod, ports = probe_pod
    by_hosts = call(pod, "ProbeTcp", host="app-alias", port=pod.info["tcp4"])
    assert by_hosts.connected and by_hosts.resolved_address == "127.0.0.1"  # type: ignore[attr-defined]
    by_dns = call(pod, "ProbeHttp", url=f"http://web:{ports['http']}/x")
    assert by_dns.status == 200 and by_dns.resolved_address == "127.0.0.1"  # type: ignore[attr-defined]
    missing = call(pod, "ProbeTcp", host="nowhere", port=80, timeout_ms=500)
    assert not missing.connected and "cannot resolve nowhere" in missing.error  # type: ignore[attr-defined]


def test_bad_probe_arguments_are_invalid(probe_pod: tuple[NetnsPod, dict[str, int]]) -> None:
    """Malformed probe requests fail INVALID_ARGUMENT with a message, not a crash."""
    pod, _ = probe_pod
    for method, kw in (
        ("ProbeHttp", {"url": "ftp://x/"}),
        ("ProbeTcp", {"host": "127.0.0.1", "port": 0}),
        ("ProbeDns", {"name": "x", "record_type": "MX", "nameservers": ["127.0.0.1"]}),
    ):
        with pytest.raises(grpc.RpcError) as e:
            call(pod, method, **kw)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method


def test_concurrency_is_bounded(probe_pod: tuple[NetnsPod, dict[str, int]]) -> None:
    """With probe_concurrency=2, a third probe while two are stuck fails RESOURCE_EXHAUSTED naming the switch."""
    pod, _ = probe_pod
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                call(pod, "ProbeTcp", host="10.78.0.5", port=80, timeout_ms=3000)
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(1.0)  # both hold their slot for 3 s from here
    with pytest.raises(grpc.RpcError) as e:
        call(pod, "ProbeTcp", host="127.0.0.1", port=9, timeout_ms=200)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "probe_concurrency" in (e.value.details() or "")
    for t in threads:
        t.join(5)
    assert len(results) == 2


def test_probes_refused_unless_enabled_and_audited(capfd: pytest.CaptureFixture[str]) -> None:
    """With allow_probes off every probe fails PERMISSION_DENIED naming the switch, and the
    attempt is still audited with its target."""
    for pod in make_netns_pod(Config(allow_probes=False)):
        for method, kw in (
            ("ProbeTcp", {"host": "127.0.0.1", "port": 80}),
            ("ProbeHttp", {"url": "http://user:pw@127.0.0.1/?token=s3cret"}),
            ("ProbeDns", {"name": "svc"}),
        ):
            with pytest.raises(grpc.RpcError) as e:
                call(pod, method, **kw)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "allow_probes" in (e.value.details() or "")
    records = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]
    targets = [
        r["object"].get("target")
        for r in records
        if r.get("event") == "rpc" and "Probe" in r["method"]
    ]
    assert targets == ["tcp 127.0.0.1:80", "http http://127.0.0.1/", "dns svc A"]
    assert all("s3cret" not in json.dumps(r.get("object")) for r in records)


def test_probe_servers_live_only_in_the_pod_namespace(
    probe_pod: tuple[NetnsPod, dict[str, int]],
) -> None:
    """Sanity: the DNS responder is bound in the test namespace, not on the host (so a passing
    DNS probe cannot have come from the sidecar's own namespace)."""
    pod, _ = probe_pod
    assert ":53 " in pod.run("ss", "-uanH") or "127.0.0.1:53" in pod.run("ss", "-uanH")
    assert os.stat("/proc/self/ns/net").st_ino != os.stat(f"/proc/{pod.pid}/ns/net").st_ino
