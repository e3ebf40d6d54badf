"""The websocket side of the fake API server: RFC 6455 framing, the port-forward
bridge and exec, as the kubelet does them over ``v4``/``v5.channel.k8s.io``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pty
import select
import socket
import ssl
import struct
import subprocess
import threading
from typing import Any

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class WebSocket:
    """Server side of RFC 6455 framing: reads masked frames, writes unmasked binary ones."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def recv(self) -> bytes | None:
        """One data frame's payload; None on a close frame or EOF."""
        while True:
            try:
                b1, b2 = self._read(2)
                n = b2 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                mask = self._read(4) if b2 & 0x80 else b"\x00\x00\x00\x00"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(n)))
            except (ConnectionError, OSError):
                return None
            opcode = b1 & 0x0F
            if opcode == 0x8:
                return None
            if opcode == 0x9:  # ping -> pong
                self._frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2, 0x0):
                return payload

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 1 << 16:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        with self.lock:
            self.sock.sendall(head + payload)

    def send(self, payload: bytes) -> None:
        self._frame(0x2, payload)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._frame(0x8, struct.pack(">H", 1000))


def bridge(ws: WebSocket, tcp: socket.socket, stopping: threading.Event) -> None:
    """Copy channel-0 frames to ``tcp`` and ``tcp`` bytes to channel-0 frames."""
    try:
        while not stopping.is_set():
            if isinstance(ws.sock, ssl.SSLSocket) and ws.sock.pending():
                r = [ws.sock]  # decrypted frames already buffered: select() cannot see them
            else:
                r, _, _ = select.select([ws.sock, tcp], [], [], 0.5)
            if tcp in r:
                data = tcp.recv(65536)
                if not data:
                    break
                ws.send(b"\x00" + data)
            if ws.sock in r:
                frame = ws.recv()
                if frame is None:
                    break
                if frame[:1] == b"\x00" and len(frame) > 1:
                    tcp.sendall(frame[1:])
    except OSError:
        pass
    finally:
        tcp.close()
        ws.close()


def run_exec(ws: WebSocket, q: dict[str, list[str]], resizes: list[Any]) -> None:
    """Run the exec's command (on a pty when tty=true) wired to the channels; end with a Status."""
    argv = q.get("command", [])
    tty = q.get("tty", ["false"])[0] == "true"
    master, slave = pty.openpty() if tty else (None, None)
    proc = subprocess.Popen(
        argv,
        stdin=slave if tty else subprocess.PIPE,
        stdout=slave if tty else subprocess.PIPE,
        stderr=slave if tty else subprocess.PIPE,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "PS1": "$ "},
    )
    if slave is not None:
        os.close(slave)
    out_fd = master if master is not None else proc.stdout.fileno()  # type: ignore[union-attr]
    in_fd = master if master is not None else proc.stdin.fileno()  # type: ignore[union-attr]
    try:
        while True:
            r, _, _ = select.select([ws.sock, out_fd], [], [], 0.5)
            if out_fd in r:
                try:
                    data = os.read(out_fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                ws.send(b"\x01" + data)
            if ws.sock in r:
                frame = ws.recv()
                if frame is None:
                    break
                if frame[:1] == b"\x00":
                    os.write(in_fd, frame[1:])
                elif frame[:2] == b"\xff\x00" and proc.stdin is not None:
                    proc.stdin.close()  # v5 CLOSE of stdin: EOF for the process
                elif frame[:1] == b"\x04":
                    resizes.append(json.loads(frame[1:]))
    finally:
        if proc.poll() is None:
            _kill(proc)
        code = proc.wait(timeout=5)
        result: dict[str, Any] = (
            {"metadata": {}, "status": "Success"}
            if code == 0
            else {
                "metadata": {},
                "status": "Failure",
                "message": f"command terminated with non-zero exit code: exit status {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
            }
        )
        with contextlib.suppress(OSError):
            ws.send(b"\x03" + json.dumps(result).encode())
            ws.close()
        if master is not None:
            os.close(master)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
