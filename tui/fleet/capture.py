"""Run a single-pod command once per member and print one section per pod.

The command modules print straight to ``sys.stdout``; to run them for many
pods at once, each worker thread writes into its own bounded buffer (a
per-thread stdout) and the sections are printed in member order. Output past
``MAX_SECTION_BYTES`` is dropped with a note: a ``cat`` of a large file times
100 pods must not fill the client's memory.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from tui.cli.common import CliError
from tui.client import Client, describe_rpc_error
from tui.fleet.fanout import Answer, ask
from tui.fleet.members import Fleet
from tui.sanitize import sanitize

MAX_SECTION_BYTES = 1 << 20


class _Section:
    """One pod's bounded output."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.cut = 0

    def add(self, b: bytes) -> None:
        room = MAX_SECTION_BYTES - len(self.data)
        if len(b) > room:
            self.cut += len(b) - max(room, 0)
            b = b[: max(room, 0)]
        self.data += b


class _Bytes:
    """The ``.buffer`` of a per-thread stdout."""

    def __init__(self, owner: _PerThread) -> None:
        self._owner = owner

    def write(self, b: bytes) -> int:
        sec = self._owner.section()
        if sec is None:
            return int(self._owner.real.buffer.write(b))
        sec.add(bytes(b))
        return len(b)

    def flush(self) -> None:
        if self._owner.section() is None:
            self._owner.real.buffer.flush()


class _PerThread:
    """A stdout that writes to the calling thread's section when it has one."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.local = threading.local()
        self.buffer = _Bytes(self)

    def section(self) -> _Section | None:
        return getattr(self.local, "section", None)

    def write(self, text: str) -> int:
        sec = self.section()
        if sec is None:
            return int(self.real.write(text))
        sec.add(text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        if self.section() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return bool(self.real.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.contextmanager
def _captured() -> Iterator[_PerThread]:
    real_out, real_err = sys.stdout, sys.stderr
    out, err = _PerThread(real_out), _PerThread(real_err)
    # Both streams share one section per thread: notes stay next to their pod's output.
    err.local = out.local
    sys.stdout, sys.stderr = out, err
    try:
        yield out
    finally:
        sys.stdout, sys.stderr = real_out, real_err


def run_sections(
    args: argparse.Namespace,
    fleet: Fleet,
    run: Callable[[argparse.Namespace, Client], int],
    concurrency: int,
) -> list[Answer[Any]]:
    """Run ``run`` for each member; print each pod's section; the answers (errors included)."""
    with _captured() as out:

        def question(client: Client, timeout: float) -> tuple[int, _Section]:
            sec = _Section()
            out.local.section = sec
            try:
                rc = run(args, client)
            except CliError as e:
                raise _Failed(str(e)) from None
            except grpc.RpcError as e:
                raise _Failed(describe_rpc_error(e)) from None
            finally:
                out.local.section = None
            if rc:
                raise _Failed(f"exit status {rc}: {sec.data.decode('utf-8', 'replace').strip()}")
            return rc, sec

        answers = ask(fleet, _catching(question), timeout=args.timeout, concurrency=concurrency)
    _print(answers)
    return [Answer(a.member, a.value, a.error, a.seconds) for a in answers]


class _Failed(Exception):
    """A pod's command failed; the message is for a person."""


def _catching(
    question: Callable[[Client, float], tuple[int, _Section]],
) -> Callable[[Client, float], tuple[int, _Section] | str]:
    def wrapped(client: Client, timeout: float) -> tuple[int, _Section] | str:
        try:
            return question(client, timeout)
        except _Failed as e:
            return f"\0{e}"

    return wrapped


def _print(answers: Sequence[Answer[Any]]) -> None:
    out = sys.stdout
    for a in answers:
        if isinstance(a.value, str):  # a failure caught inside the worker
            a.error, a.value = a.value[1:], None
        out.write(f"==> {sanitize(a.member)} <==\n")
        out.flush()
        if a.value is None:
            out.write(f"(no answer: {sanitize(a.error)})\n\n")
            continue
        sec: _Section = a.value[1]
        if sec.data:
            out.buffer.write(bytes(sec.data))
            if not sec.data.endswith(b"\n"):
                out.buffer.write(b"\n")
            out.buffer.flush()
        if sec.cut:
            out.write(f"(output cut: {sec.cut} more bytes not shown)\n")
        out.write("\n")
    out.flush()
