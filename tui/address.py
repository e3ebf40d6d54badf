"""Parse and check a sidecar address (HOST:PORT, [V6]:PORT)."""

from __future__ import annotations


class AddressError(ValueError):
    """The address is malformed; the message says how to write it."""


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` or ``[IPV6]:PORT`` into (host, port).

    Raises:
        AddressError: empty, no port, port not a number or out of range.
    """
    s = text.strip()
    if not s:
        raise AddressError("no address given: use --addr HOST:PORT or set BORESCOPE_ADDR")
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError(f"malformed address {text!r}: expected [IPV6]:PORT")
        port_s = rest[1:]
    else:
        host, sep, port_s = s.rpartition(":")
        if not sep or not host:
            raise AddressError(f"malformed address {text!r}: expected HOST:PORT")
        if ":" in host:
            raise AddressError(f"malformed address {text!r}: write IPv6 as [ADDR]:PORT")
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise AddressError(f"malformed address {text!r}: port must be 1-65535")
    return host, int(port_s)


def format_address(host: str, port: int) -> str:
    """The canonical text form, bracketing IPv6."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
