"""Ask every member one question: bounded concurrency, a per-pod deadline, partial answers.

``ask`` never hangs and never lets one pod spoil the others: each member's
call carries the gRPC deadline, and a watchdog closes the channel of any
member still busy past deadline + grace (a stopped sidecar behind a
port-forward, a connect stuck in the kernel), which ends its call at once.
Every member yields exactly one ``Answer``: a value or a one-line error.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

from tui.client import Client, ConnectError, describe_rpc_error
from tui.fleet.members import Fleet, Member

T = TypeVar("T")

#: Default number of pods asked at once (each is a channel, maybe a port-forward).
CONCURRENCY = 32
#: Extra time past a member's deadline before the watchdog cuts its channel.
GRACE_S = 1.0


@dataclass
class Answer(Generic[T]):
    """One member's answer.

    Attributes:
        member: the member's name.
        value: what the question returned (None on error).
        error: why there is no value ("" = answered).
        seconds: how long the member took.
    """

    member: str
    value: T | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the member answered."""
        return not self.error


def describe(err: grpc.RpcError, timeout: float) -> str:
    """One line for a failed call, naming a deadline as slowness, not as a bug."""
    code = err.code() if hasattr(err, "code") else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {timeout:g}s (sidecar slow or stopped; raise --timeout)"
    return describe_rpc_error(err)


class _Running:
    """Members in flight: when each started and its client (for the watchdog)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, tuple[float, Client]] = {}
        self.cut: set[str] = set()


def ask(
    fleet: Fleet,
    question: Callable[[Client, float], T],
    *,
    timeout: float,
    concurrency: int = CONCURRENCY,
    on_answer: Callable[[Answer[T]], None] | None = None,
    clients: dict[str, Client] | None = None,
) -> list[Answer[T]]:
    """Ask every member ``question(client, timeout)``; one Answer per member, in member order.

    Args:
        fleet: the members.
        question: runs in a worker thread with a fresh client; passes ``timeout``
            (and ``client.metadata``) on every call; returns something small.
        timeout: per-member deadline in seconds (counted from that member's start).
        concurrency: members asked at once.
        on_answer: told each answer as it arrives (progress), from the caller's thread.
        clients: keep each member's client here between calls (a screen that refreshes);
            a member that failed gets a fresh one next time. None = close after the call.
    """
    members = fleet.members
    running = _Running()
    answers: dict[str, Answer[T]] = {}
    workers = max(1, min(concurrency, len(members)))
    pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="fleet")
    try:
        futures = {
            pool.submit(_one, fleet, m, question, timeout, running, clients=clients): m.name
            for m in members
        }
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            for f in done:
                a = f.result()
                answers[a.member] = a
                if on_answer is not None:
                    on_answer(a)
            _watchdog(running, timeout)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [answers[m.name] for m in members]


def _watchdog(running: _Running, timeout: float) -> None:
    now = time.monotonic()
    with running.lock:
        late = [
            (name, c) for name, (t0, c) in running.clients.items() if now - t0 > timeout + GRACE_S
        ]
        for name, _ in late:
            running.cut.add(name)
            del running.clients[name]
    for _, client in late:
        client.close()  # cancels its calls: the worker returns at once


def _one(
    fleet: Fleet,
    member: Member,
    question: Callable[[Client, float], T],
    timeout: float,
    running: _Running,
    *,
    clients: dict[str, Client] | None = None,
) -> Answer[T]:
    if member.error:
        return Answer(member.name, error=member.error)
    t0 = time.monotonic()
    client: Client | None = None
    error = ""
    try:
        with running.lock:
            client = clients.pop(member.name, None) if clients is not None else None
        client = client or fleet.open(member)
        with running.lock:
            running.clients[member.name] = (t0, client)
        value = question(client, timeout)
        if clients is not None:
            with running.lock:
                if member.name not in running.cut:
                    clients[member.name], client = client, None  # kept, not closed
        return Answer(member.name, value, seconds=time.monotonic() - t0)
    except grpc.RpcError as e:
        error = describe(e, timeout)
        # Through Kubernetes, the port-forward knows why better than gRPC does (RBAC, pod gone).
        why = getattr(getattr(client, "forwarder", None), "last_error", "")
        if why:
            error = f"{error} (port-forward: {why})"
    except ConnectError as e:
        error = str(e)
    except ValueError as e:
        # grpc raises ValueError on a call over a channel the watchdog closed.
        error = str(e)
    finally:
        with running.lock:
            running.clients.pop(member.name, None)
            if member.name in running.cut:
                error = f"no answer within {timeout:g}s (sidecar slow or stopped; raise --timeout)"
        if client is not None:
            client.close()
    return Answer(member.name, error=error, seconds=time.monotonic() - t0)
