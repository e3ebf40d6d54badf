"""Processes service: listings, details, signals and watch streams."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import grpc

import agent
from agent.errors import NotFound
from agent.results.proc import ProcessInfo
from protos import processes_pb2, processes_pb2_grpc
from sidecar import audit
from sidecar.convert import processes as convert
from sidecar.deps import Deps

SERVICE_NAMES = [processes_pb2.DESCRIPTOR.services_by_name["Processes"].full_name]

MIN_INTERVAL_MS, MAX_INTERVAL_MS, DEFAULT_INTERVAL_MS = 250, 60_000, 1000
RESPONSE_SLACK = 64 << 10  # page info, timestamps, gRPC framing


class ProcessesServicer(processes_pb2_grpc.ProcessesServicer):
    """Thin mapping of the Processes RPCs onto ``agent``."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.reader = agent.ProcessReader(deps.pod, deps.config.proc_root)
        self.redactor = agent.Redactor(
            deps.config.secret_patterns, reveal=deps.config.reveal_secrets
        )

    def ListProcesses(
        self, request: processes_pb2.ListProcessesRequest, context: grpc.ServicerContext
    ) -> processes_pb2.ListProcessesResponse:
        want = agent.ProcessReader.want(request.fields, request.cheap)
        result = self.reader.list(
            container=request.container.id,
            sort=convert.SORTS.get(request.sort, "pid"),
            descending=request.descending,
            page_token=request.page.page_token,
            limit=request.page.page_size,
            cpu_window_ms=request.cpu_window_ms,
            want=want,
        )
        audit.note(container=request.container.id)
        if not self.redactor.reveal:  # argv can carry secrets too (--db-password=...)
            result = dataclasses.replace(result, processes=self._redact(result.processes))
        budget = self.deps.config.max_message_bytes - RESPONSE_SLACK
        return convert.process_list(result, budget)

    def _redact(self, procs: tuple[ProcessInfo, ...]) -> tuple[ProcessInfo, ...]:
        """Mask secret-looking argv values; copies only the processes that change (hot path)."""
        out = []
        for p in procs:
            shown = self.redactor.argv(p.cmdline)
            out.append(p if shown == p.cmdline else dataclasses.replace(p, cmdline=shown))
        return tuple(out)

    def GetProcess(
        self, request: processes_pb2.GetProcessRequest, context: grpc.ServicerContext
    ) -> processes_pb2.ProcessDetail:
        ref = convert.ref(request.ref)
        audit.note(pid=ref.pid, start_ticks=ref.start_ticks, sections=",".join(request.sections))
        detail = agent.get_process(self.reader, ref, tuple(request.sections), self.redactor)
        audit.note(
            container=detail.process.container_id, start_ticks=detail.process.ref.start_ticks
        )
        if not self.redactor.reveal:
            proc = dataclasses.replace(
                detail.process, cmdline=self.redactor.argv(detail.process.cmdline)
            )
            detail = dataclasses.replace(detail, process=proc)
        return convert.detail(detail)

    def SignalProcess(
        self, request: processes_pb2.SignalProcessRequest, context: grpc.ServicerContext
    ) -> processes_pb2.SignalProcessResponse:
        ref = convert.ref(request.ref)
        audit.note(pid=ref.pid, start_ticks=ref.start_ticks, signal=request.signal)
        if request.reason:
            audit.note(reason=request.reason[:200])
        cfg = self.deps.config
        sig = agent.parse_signal(request.signal)
        agent.check_allowed(sig, cfg.allow_signals, cfg.allowed_signals)
        owner = next((c for c in self.deps.pod.containers() if ref.pid in c.pids), None)
        if owner is None:
            raise NotFound(f"no process {ref.pid} in this pod")
        audit.note(container=owner.id, signal=sig.name)
        if owner.kind is not agent.ContainerKind.APP:
            raise agent.errors.NotAllowed(
                f"pid {ref.pid} belongs to the {owner.kind.name.lower()} container "
                f"{owner.name}; borescope only signals app containers"
            )
        result = agent.send_signal(ref, sig, self.deps.config.proc_root)
        audit.note(method=result.method)
        return convert.signal_result(result)

    def WatchProcess(
        self, request: processes_pb2.WatchProcessRequest, context: grpc.ServicerContext
    ) -> Iterator[processes_pb2.ProcessSample]:
        ref = convert.ref(request.ref)
        audit.note(pid=ref.pid, start_ticks=ref.start_ticks)
        interval_ms = request.interval_ms or DEFAULT_INTERVAL_MS
        interval = min(max(interval_ms, MIN_INTERVAL_MS), MAX_INTERVAL_MS) / 1000.0
        deadline = time.monotonic() + self.deps.config.max_stream_age_s
        sampler = agent.Sampler(self.reader, ref)
        sent = 0
        while context.is_active():
            if self.deps.stopping.is_set():
                context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is shutting down")
            # The first sample blocks; the gRPC thread is ours and flow control paces us.
            yield convert.sample(sampler.sample())
            sent += 1
            if request.max_samples and sent >= request.max_samples:
                return
            if time.monotonic() >= deadline:
                context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "stream reached max_stream_age_s; reconnect to keep watching",
                )
            if self.deps.stopping.wait(interval):
                context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is shutting down")


def register(server: grpc.Server, deps: Deps) -> None:
    processes_pb2_grpc.add_ProcessesServicer_to_server(ProcessesServicer(deps), server)
