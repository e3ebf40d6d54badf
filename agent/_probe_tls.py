"""A summary of a TLS peer certificate, verified or not.

``getpeercert()`` only decodes a certificate that verified; for one that did
not (self-signed, expired, wrong name: exactly the cases an engineer probes
for) the DER bytes are decoded by the ``ssl`` module's own decoder, which
reads a PEM file; no extra dependency is needed.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any

from agent.results.net import Certificate


def _name(rdns: Any) -> str:
    """(('commonName', 'x'),), ... -> 'CN=x, O=y'."""
    short = {
        "commonName": "CN",
        "organizationName": "O",
        "organizationalUnitName": "OU",
        "countryName": "C",
        "localityName": "L",
        "stateOrProvinceName": "ST",
    }
    parts = []
    for rdn in rdns or ():
        for key, value in rdn:
            parts.append(f"{short.get(key, key)}={value}")
    return ", ".join(parts)


def _decode_der(der: bytes) -> dict[str, Any]:
    """Decode DER with CPython's certificate decoder (it only takes a file)."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is None:
        return {}
    fd, path = tempfile.mkstemp(prefix="borescope-cert-", suffix=".pem")
    try:
        os.write(fd, ssl.DER_cert_to_PEM_cert(der).encode())
        os.close(fd)
        result: dict[str, Any] = decode(path)
        return result
    except (ssl.SSLError, OSError, ValueError):
        return {}  # undecodable: the summary says so below
    finally:
        os.unlink(path)


def _seconds(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return float(ssl.cert_time_to_seconds(value))
    except ValueError:
        return 0.0


def certificate_summary(
    tls: ssl.SSLSocket, *, verified: bool, verify_error: str = ""
) -> Certificate | None:
    """Subject, issuer, SANs and validity of the peer's certificate."""
    der = tls.getpeercert(binary_form=True)
    if not der:
        return None
    info = _decode_der(der)
    if not info:
        return Certificate("(undecodable certificate)", "", (), 0.0, 0.0, verified, verify_error)
    sans = tuple(
        f"{kind}:{value}" if kind != "DNS" else value
        for kind, value in info.get("subjectAltName", ())
    )
    return Certificate(
        subject=_name(info.get("subject")),
        issuer=_name(info.get("issuer")),
        sans=sans,
        not_before=_seconds(info.get("notBefore")),
        not_after=_seconds(info.get("notAfter")),
        verified=verified,
        verify_error=verify_error,
    )
