"""Fuzzing: requests generated from the proto descriptors, for every method of every service.

Strategies are built from each request message's descriptor (scalars of each
type, enums including unknown numbers, nested messages, repeated fields and
maps), mixed with values that reach deep code: the app's real pid and
container id, real and hostile paths, cursors and page tokens. Each request
goes to a real sidecar over a real channel; only documented status codes may
come back — never INTERNAL or UNKNOWN (an unhandled exception) — and the
sidecar must still answer afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import events_pb2, files_pb2, info_pb2, logs_pb2, network_pb2, processes_pb2
from sidecar.config import Config
from tests.conftest import Running, start_sidecar
from tests.reliability._pod import LOG_PATH, canary_app, is_root

pytestmark = pytest.mark.timeout(240)

MODULES = (events_pb2, files_pb2, info_pb2, logs_pb2, network_pb2, processes_pb2)
METHODS: list[MethodDescriptor] = [
    m for mod in MODULES for s in mod.DESCRIPTOR.services_by_name.values() for m in s.methods
]
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # a follow stream cut by the test's own deadline
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.CANCELLED,  # the test cancels streams after a few messages
}
STREAM_DEADLINE_S = 0.5
STREAM_TAKE = 3
_codes: Counter[str] = Counter()

HOSTILE_TEXT = [
    "",
    "/",
    "/etc/hostname",
    "/etc",
    "/proc/self/environ",
    "/proc/1/root/etc/shadow",
    "/../../../../etc/passwd",
    "../x",
    "a\x00b",
    "\x1b[31m",
    "//" * 300,
    "/" + "d/" * 400,
    "*",
    "**/*",
    "[",
    "localhost",
    "127.0.0.1",
    "0",
    "-1",
    "ZZZ",
    "eyJ4IjoxfQ",
    "SIGKILL",
    LOG_PATH,
]


def _scalar(f: FieldDescriptor, hints: dict[str, Any]) -> st.SearchStrategy[Any]:
    t = f.type
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(HOSTILE_TEXT + hints["strings"]), st.text(max_size=40))
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(
            st.sampled_from([b"", b"/", b"/etc/hostname", b"/bad-\xff\xfe", b"/x\x00y"]),
            st.binary(max_size=40),
        )
    if t == FieldDescriptor.TYPE_ENUM:
        return st.one_of(
            st.sampled_from([v.number for v in f.enum_type.values]),
            st.integers(-5, 1000),
        )
    if f.name.endswith("_ms"):
        # Windows and timeouts are clamped by the servers (tested with their services);
        # short values keep each call quick so every method gets its examples.
        return st.integers(0, 300)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    unsigned = t in (
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    )
    bits = 64 if t in (
        FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
    ) else 32  # fmt: skip
    lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    edges = [v for v in (0, 1, -1, lo, hi, *hints["ints"]) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def message_strategy(
    d: Descriptor, hints: dict[str, Any], depth: int = 0
) -> st.SearchStrategy[Any]:
    """A strategy of kwargs-built messages of type ``d`` (nested up to depth 3)."""
    cls = _class_of(d)
    if depth > 3:
        return st.just(cls())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in d.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            k, v = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            fields[f.name] = st.dictionaries(_scalar(k, hints), _scalar(v, hints), max_size=3)
            continue
        if f.message_type is not None:
            inner = message_strategy(f.message_type, hints, depth + 1)
        else:
            inner = _scalar(f, hints)
        if _repeated(f):
            fields[f.name] = st.lists(inner, max_size=3)
        else:
            fields[f.name] = inner
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: _build(cls, kw))


def _repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def _build(cls: Any, kw: dict[str, Any]) -> Any:
    msg = cls()
    for name, value in kw.items():
        f = msg.DESCRIPTOR.fields_by_name[name]
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            getattr(msg, name).update(value)
        elif _repeated(f):
            getattr(msg, name).extend(value)
        elif f.message_type is not None:
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


def _class_of(d: Descriptor) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(d)


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[Running, dict[str, Any]]]:
    """A sidecar watching the canary app (root) or a plain child process; plus hints."""
    if is_root():
        with canary_app(interval=0.1) as app:
            r = start_sidecar(Config(local_root=app.pid, log_sources=(LOG_PATH,)))
            try:
                yield r, _hints(r, app.pid)
            finally:
                r.client.close()
                r.sidecar.stop(0)
        return
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    r = start_sidecar(Config(local_root=p.pid))
    try:
        yield r, _hints(r, p.pid)
    finally:
        r.client.close()
        r.sidecar.stop(0)
        p.kill()
        p.wait()


def _hints(r: Running, pid: int) -> dict[str, Any]:
    c = r.client
    sources = c.logs.ListSources(logs_pb2.ListSourcesRequest(), metadata=c.metadata, timeout=10)
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    return {
        "ints": [pid, ticks, os.getpid(), 2**31 - 1, 4096, 1 << 20],
        "strings": [f"local-{pid}", *(s.id for s in sources.sources), "app", "sidecar"],
    }


def _call(r: Running, m: MethodDescriptor, req: Any) -> grpc.StatusCode:
    path = f"/{m.containing_service.full_name}/{m.name}"
    out_cls = _class_of(m.output_type)
    md = r.client.metadata
    ch = r.client.channel
    try:
        if m.server_streaming:
            call = ch.unary_stream(path, response_deserializer=out_cls.FromString)(
                req.SerializeToString(), metadata=md, timeout=STREAM_DEADLINE_S
            )
            for i, _ in enumerate(call):
                if i + 1 >= STREAM_TAKE:
                    call.cancel()
                    break
            return grpc.StatusCode.OK
        ch.unary_unary(path, response_deserializer=out_cls.FromString)(
            req.SerializeToString(), metadata=md, timeout=10
        )
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        code: grpc.StatusCode = e.code()  # type: ignore[attr-defined]
        assert code in DOCUMENTED, f"{m.name}({req!r}) -> {code.name}: {e.details()}"  # type: ignore[attr-defined]
        return code


@pytest.mark.parametrize(
    "method",
    METHODS,
    ids=lambda m: f"{m.containing_service.name}.{m.name}",
)
def test_fuzz_method(
    method: MethodDescriptor,
    target: tuple[Running, dict[str, Any]],
    soak: bool,
    figures: Any,
) -> None:
    """Generated requests for this method get only documented status codes (never
    INTERNAL/UNKNOWN) and the sidecar still answers GetInfo afterwards."""
    r, hints = target
    n = 200 if soak else (12 if method.server_streaming else 30)
    strategy = message_strategy(method.input_type, hints)
    seen: Counter[str] = Counter()

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=not soak,
        suppress_health_check=list(HealthCheck),
    )
    @given(req=strategy)
    def run(req: Any) -> None:
        seen[_call(r, method, req).name] += 1

    t0 = time.monotonic()
    run()
    r.client.info.GetInfo(info_pb2.GetInfoRequest(), metadata=r.client.metadata, timeout=10)
    figures.add(
        "test_fuzz",
        f"{method.containing_service.name}.{method.name}",
        sum(seen.values()),
        "requests",
        ", ".join(f"{k} {v}" for k, v in sorted(seen.items())) + f"; {time.monotonic() - t0:.1f} s",
    )


@pytest.mark.parametrize("rpc", ["ReadFile", "Stat", "ListDir", "Find", "HashFile", "DiskUsage"])
def test_undecodable_raw_path_is_not_found_not_unknown(
    rpc: str, target: tuple[Running, dict[str, Any]]
) -> None:
    """Regression (found by the fuzzer): a raw_path with bytes that are not UTF-8 made the
    error message unencodable, so the call ended UNKNOWN; it must be NOT_FOUND with a
    readable message."""
    r, hints = target
    sel = {"container": {"id": hints["strings"][0]}, "raw_path": b"/bad-\xff\xfe/x"}
    req = getattr(files_pb2, f"{rpc}Request")(**sel)
    with pytest.raises(grpc.RpcError) as e:
        getattr(r.client.files, rpc)(req, metadata=r.client.metadata, timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()  # type: ignore[attr-defined]
    assert "bad-" in e.value.details()  # type: ignore[attr-defined]


@pytest.mark.parametrize("number", [-1, 8, 117])
def test_find_with_an_unknown_file_type_is_invalid_argument(
    number: int, target: tuple[Running, dict[str, Any]]
) -> None:
    """Regression (found by the fuzzer): Find with a FileType number the server does not
    know raised ValueError inside the servicer (INTERNAL); it must be INVALID_ARGUMENT
    naming the known types."""
    r, hints = target
    req = files_pb2.FindRequest(container={"id": hints["strings"][0]}, path="/", type=number)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as e:
        r.client.files.Find(req, metadata=r.client.metadata, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()  # type: ignore[attr-defined]
    assert str(number) in e.value.details()  # type: ignore[attr-defined]


def _raw(r: Running, m: MethodDescriptor, data: bytes, md: Any) -> grpc.StatusCode:
    path = f"/{m.containing_service.full_name}/{m.name}"
    try:
        if m.server_streaming:
            call = r.client.channel.unary_stream(path)(data, metadata=md, timeout=STREAM_DEADLINE_S)
            for i, _ in enumerate(call):
                if i + 1 >= STREAM_TAKE:
                    call.cancel()
                    break
        else:
            r.client.channel.unary_unary(path)(data, metadata=md, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()  # type: ignore[attr-defined,no-any-return]


def test_raw_wire_bytes_get_documented_codes(
    target: tuple[Running, dict[str, Any]], soak: bool, figures: Any
) -> None:
    """Regression (found here): request bytes that are not a valid message (corrupt wire
    format, invalid UTF-8 in a string) made gRPC answer INTERNAL "Exception deserializing
    request"; every method must answer a documented code (INVALID_ARGUMENT for those),
    and without a token still UNAUTHENTICATED."""
    r, _ = target
    n = 100 if soak else 8
    seen: Counter[str] = Counter()
    fixed = [b"\xff\xff\xff", b"\n\xff", b"\x12\x05ab", b"\x0a\x02\xc3\x28", b"\x08" + b"\xff" * 11]

    @settings(max_examples=n, deadline=None, database=None, derandomize=not soak,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=st.one_of(st.sampled_from(fixed), st.binary(max_size=64)))
    def run(data: bytes) -> None:
        for m in METHODS:
            code = _raw(r, m, data, r.client.metadata)
            assert code in DOCUMENTED, f"{m.name}({data!r}) -> {code.name}"
            seen[code.name] += 1
            assert _raw(r, m, data, ()) == grpc.StatusCode.UNAUTHENTICATED

    run()
    figures.add("test_fuzz", "raw wire bytes, every method", sum(seen.values()), "requests",
                ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))  # fmt: skip
