"""Record parsing: formats, levels, timestamps, caps, bad bytes, CRI joining (unit + hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent._logparse import CriJoiner, epoch_of, iso_epoch, level_of, parse_line
from agent.results.logs import Level, RecordKind

T0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def p(line: bytes, **kw: object) -> object:
    return parse_line(line, source_id="s", offset=0, seq=0, now=1.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "time", "level", "message"),
    [
        (
            b'{"time":"2024-01-01T00:00:00.25Z","level":"error","msg":"boom"}',
            T0 + 0.25,
            Level.ERROR,
            "boom",
        ),
        (b'{"ts":1704067200.5,"lvl":"warn","message":"m"}', T0 + 0.5, Level.WARN, "m"),
        (b'{"timestamp":1704067200000,"severity":"INFO","msg":"ms"}', T0, Level.INFO, "ms"),
        (
            b'{"@timestamp":"2024-01-01T01:00:00+01:00","level":50,"msg":"pino"}',
            T0,
            Level.ERROR,
            "pino",
        ),
        (
            b'ts=2024-01-01T00:00:00Z level=debug msg="hello world" user=7',
            T0,
            Level.DEBUG,
            "hello world",
        ),
        (b"2024-01-01T00:00:00.123Z WARN disk low", T0 + 0.123, Level.WARN, None),
        (b"2024-01-01 00:00:00,5 ERROR [main] x", T0 + 0.5, Level.ERROR, None),
        (b"2024/01/01 00:00:00 [crit] 12#0: upstream died", T0, Level.FATAL, None),
        (
            b'10.0.0.1 - - [01/Jan/2024:01:00:00 +0100] "GET / HTTP/1.1" 502 12',
            T0,
            Level.ERROR,
            None,
        ),
        (
            b'10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET /x HTTP/1.1" 404 0',
            T0,
            Level.WARN,
            None,
        ),
        (b'10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 5', T0, Level.INFO, None),
    ],
)
def test_formats(line: bytes, time: float, level: int, message: str | None) -> None:
    """JSON, logfmt, ISO text, nginx error and access logs give time, level and message."""
    r = p(line)
    assert r.time == pytest.approx(time)  # type: ignore[attr-defined]
    assert not r.time_is_receive  # type: ignore[attr-defined]
    assert r.level == level  # type: ignore[attr-defined]
    assert r.message == (message if message is not None else line.decode())  # type: ignore[attr-defined]
    assert r.raw == line.decode()  # type: ignore[attr-defined]
    assert r.kind == RecordKind.LINE  # type: ignore[attr-defined]


def test_syslog_has_this_year() -> None:
    """A syslog time (no year) is placed in the current year, or last year if that would be future."""
    r = p(b"<13>Jan  2 03:04:05 host app[1]: ERROR x")
    dt = datetime.fromtimestamp(r.time, UTC)  # type: ignore[attr-defined]
    assert (dt.month, dt.day, dt.hour, dt.minute, dt.second) == (1, 2, 3, 4, 5)
    assert r.level == Level.ERROR  # type: ignore[attr-defined]


def test_receive_time_is_marked() -> None:
    """A line without a timestamp gets the receive time, marked as such."""
    r = p(b"just words")
    assert r.time == 1.0 and r.time_is_receive  # type: ignore[attr-defined]


def test_prose_error_is_not_a_level() -> None:
    """Lowercase 'error' in prose is not a level; uppercase words and [error] are."""
    assert p(b"no error occurred").level == 0  # type: ignore[attr-defined]
    assert p(b"x [error] y").level == Level.ERROR  # type: ignore[attr-defined]
    assert p(b"TERRORIST is not a level").level == 0  # type: ignore[attr-defined]


def test_fields_only_in_full_detail() -> None:
    """DETAIL_FULL builds the field map (non-strings as JSON); basic detail does not."""
    line = b'{"time":"2024-01-01T00:00:00Z","level":"info","msg":"m","n":3,"o":{"a":[1]}}'
    full = p(line)
    assert full.fields == {
        "time": "2024-01-01T00:00:00Z",
        "level": "info",
        "msg": "m",
        "n": "3",
        "o": '{"a":[1]}',
    }  # type: ignore[attr-defined]
    assert p(line, full=False).fields is None  # type: ignore[attr-defined]


def test_cap_marks_truncation() -> None:
    """A line over the cap is cut with a marker saying how much was dropped."""
    r = p(b"x" * 100, cap=10)
    assert r.truncated and r.raw == "x" * 10 + " …[truncated 90 bytes]"  # type: ignore[attr-defined]
    r2 = p(b"x" * 10, cap=10, dropped=5)
    assert r2.truncated and r2.raw.endswith("[truncated 5 bytes]")  # type: ignore[attr-defined]


def test_invalid_utf8_replaced() -> None:
    """Invalid UTF-8 becomes U+FFFD; nothing raises."""
    assert p(b"\xff\xfe ok \xc3").raw == "\ufffd\ufffd ok \ufffd"  # type: ignore[attr-defined]


def test_level_and_time_helpers() -> None:
    """Level words and numbers normalise; numeric times of any unit become seconds."""
    assert level_of("Warning") == Level.WARN and level_of("30") == Level.INFO and level_of("x") == 0
    assert epoch_of(1704067200) == T0 and epoch_of(1704067200_000_000_000) == T0
    assert epoch_of("1704067200123") == pytest.approx(T0 + 0.123)
    assert iso_epoch("2024-01-01 00:00 UTC") == T0 and iso_epoch("nope") is None


def test_cri_joins_partials_per_stream() -> None:
    """P entries are held per stream and joined when their F arrives; times come from the first."""
    j = CriJoiner(cap=100)
    assert j.feed(b"2024-01-01T00:00:00Z stdout P a") is None
    assert j.feed(b"2024-01-01T00:00:01Z stderr F err") == (b"err", "stderr", T0 + 1, 0)
    assert j.pending
    assert j.feed(b"2024-01-01T00:00:02Z stdout F b") == (b"ab", "stdout", T0, 0)
    assert not j.pending
    assert j.feed(b"not cri at all") == (b"not cri at all", "", None, 0)


def test_cri_cap_counts_dropped() -> None:
    """A joined CRI line longer than the cap keeps the cap and counts the rest."""
    j = CriJoiner(cap=4)
    j.feed(b"2024-01-01T00:00:00Z stdout P abc")
    assert j.feed(b"2024-01-01T00:00:00Z stdout F defg") == (b"abcd", "stdout", T0, 3)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64), st.booleans())
def test_never_raises_and_respects_cap(raw: bytes, cap: int, full: bool) -> None:
    """Any bytes parse without raising; the raw text keeps at most ``cap`` bytes' worth plus the marker."""
    r = parse_line(raw, source_id="s", offset=0, seq=0, now=1.0, cap=cap, full=full)
    body = r.raw.split(" …[truncated ")[0]
    assert len(body) <= cap  # decoding never makes more characters than bytes
    assert r.truncated == (len(raw) > cap)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False), st.none()),
        max_size=8,
    ),
    st.sampled_from(["debug", "info", "warn", "error", "fatal"]),
)
def test_json_round_trip(obj: dict[str, object], level: str) -> None:
    """Any JSON object with a level and a message parses back to that level and message."""
    obj = {**obj, "level": level, "msg": "hello"}
    r = parse_line(json.dumps(obj).encode(), source_id="s", offset=0, seq=0, now=1.0)
    assert r.level == level_of(level) and r.message == "hello"
    assert r.fields is not None and r.fields["msg"] == "hello"
