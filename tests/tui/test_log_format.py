"""How a record reads on the home screen: lnav-style lines, from real protobuf records.

Pure functions (no app): structured lines become message + key=value fields,
anything else is shown as written, hostile values are escaped, and the
view's styled spans put the fields (and only them) in the dim style.
"""

from __future__ import annotations

import itertools
import json

from protos import logs_pb2
from tui.widgets.log_fields import MAX_VALUE, level_of, structure
from tui.widgets.log_format import TEXT_AT, lines_of, row_of, short_name
from tui.widgets.log_view import FIELDS_STYLE, TIME_STYLE, spans

T = 1704067200_250_000_000  # 2024-01-01T00:00:00.25Z


def record(raw: str, message: str = "", level: int = logs_pb2.LEVEL_INFO) -> logs_pb2.Record:
    """A record as the sidecar sends it (DETAIL_BASIC): raw is empty when it equals message."""
    return logs_pb2.Record(
        time_ns=T,
        source_id="file:app",
        level=level,
        message=message or raw,
        raw="" if not message or message == raw else raw,
        seq=1,
    )


def test_json_line_is_message_then_fields_in_their_order() -> None:
    """time/level/msg have their own columns; the other keys follow as key=value, in the
    line's order; values with spaces are quoted; nested values are compact JSON."""
    raw = json.dumps(
        {
            "time": "2024-01-01T00:00:00.25Z",
            "level": "error",
            "msg": "database query failed",
            "err": "timeout after 5s",
            "attempt": 3,
            "retry": True,
            "ctx": {"db": "orders", "ids": [1, 2]},
            "note": None,
        }
    )
    row = row_of(record(raw, "database query failed", logs_pb2.LEVEL_ERROR))
    assert row.message == "database query failed"
    assert row.fields == (
        'err="timeout after 5s" attempt=3 retry=true ctx={"db":"orders","ids":[1,2]} note=null'
    )
    (line,) = lines_of(row, "app.log", pretty=False)
    assert line == (
        " 00:00:00.250 ERROR app.log        database query failed "
        'err="timeout after 5s" attempt=3 retry=true ctx={"db":"orders","ids":[1,2]} note=null'
    )
    assert row.text == raw  # kept whole, for the pretty-print toggle


def test_pretty_toggle_shows_the_whole_json() -> None:
    """With pretty-print on, the row is its head line and the full JSON object, every key."""
    raw = '{"ts":"2024-01-01T00:00:00Z","level":"info","msg":"hello","user":"bob"}'
    row = row_of(record(raw, "hello"))
    lines = lines_of(row, "app.log", pretty=True)
    assert lines[0].endswith("{") and lines[-1].strip() == "}"
    body = "\n".join(lines)
    for key in ('"ts"', '"level"', '"msg": "hello"', '"user": "bob"'):
        assert key in body
    # ...and back to the one-line form.
    assert lines_of(row, "app.log", pretty=False)[0].endswith("hello user=bob")


def test_json_without_message_key_shows_its_fields() -> None:
    """No msg/message key: the fields are the text (the sidecar sends the raw line as message)."""
    raw = '{"time":"2024-01-01T00:00:00Z","level":"info","path":"/healthz","ms":1}'
    row = row_of(record(raw))
    assert (row.message, row.fields) == ("", "path=/healthz ms=1")
    assert lines_of(row, "x", pretty=False)[0].endswith(" path=/healthz ms=1")
    assert row.fields_at == TEXT_AT


def test_logfmt_line_is_structured_too() -> None:
    raw = 'time=2024-01-01T00:00:00Z level=warn msg="slow query" ms=950 table=orders'
    row = row_of(record(raw, "slow query", logs_pb2.LEVEL_WARN))
    assert (row.message, row.fields) == ("slow query", "ms=950 table=orders")


def test_plain_text_and_non_objects_are_shown_as_written() -> None:
    """Text, JSON arrays, broken JSON and lines cut at the cap are not taken apart."""
    for raw in (
        "2024-01-01T00:00:00Z INFO worker tick 41",
        "[1, 2, 3]",
        '{"msg": "cut in the mid',
        "level=info but not logfmt at the start",
    ):
        row = row_of(record(raw))
        assert (row.message, row.fields) == ("", ""), raw
        assert lines_of(row, "x", pretty=False)[0].endswith(raw)
    cut = record('{"msg":"x","a":1}')
    cut.truncated = True
    assert row_of(cut).fields == ""


def test_hostile_values_and_keys_are_escaped() -> None:
    """A JSON escape decodes to a control character: it must reach the screen escaped."""
    raw = json.dumps(
        {"msg": "evil \x1b]52;c;aGk=\x07 done", "k\x1b[2J": "v\u202eq", "tab": "a\tb"},
        ensure_ascii=True,
    )
    row = row_of(record(raw, "evil \x1b]52;c;aGk=\x07 done"))
    (line,) = lines_of(row, "app.log", pretty=False)
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b]52;c;aGk=\\x07" in line and "\\u202e" in line
    assert "\t" not in line
    pretty = lines_of(row, "app.log", pretty=True)
    assert not any("\x1b" in p or "\u202e" in p for p in pretty)


def test_long_values_are_cut_in_the_one_line_form() -> None:
    raw = json.dumps({"msg": "m", "blob": "x" * (MAX_VALUE * 2)})
    parts = structure(raw)
    assert parts is not None
    assert parts[1] == "blob=" + "x" * MAX_VALUE + "…"


def test_spans_dim_the_fields_only() -> None:
    """The view's spans: time dim, level coloured, source in its colour, message plain (red
    for errors), fields dim; they cover the line exactly."""
    raw = '{"level":"error","msg":"failed","err":"timeout"}'
    row = row_of(record(raw, "failed", logs_pb2.LEVEL_ERROR))
    (line,) = lines_of(row, "app.log", pretty=False)
    cuts = spans(line, row, True, {"app.log": "cyan"})
    assert cuts[0][0] == 0 and cuts[-1][1] == len(line)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cuts))
    styled = {line[a:b].strip(): style for a, b, style in cuts if line[a:b].strip()}
    assert styled["00:00:00.250"] == TIME_STYLE
    assert styled["ERROR"] == "bold red"
    assert styled["app.log"] == "cyan"
    assert styled["failed"] == "red"
    assert styled["err=timeout"] == FIELDS_STYLE
    # Pretty-print: the head line has no fields part; the JSON lines under it are plain.
    head, *rest = lines_of(row, "app.log", pretty=True)
    assert [c for c in spans(head, row, True, {}) if c[0] >= TEXT_AT] == [
        (TEXT_AT, len(head), "red")
    ]
    assert spans(rest[0], row, False, {}) == [(0, len(rest[0]), "")]


def test_levels_of_lines_the_sidecar_did_not_parse() -> None:
    """Client-side sources (the API's copy of stdout): JSON/logfmt level keys, else an
    upper-case level word near the start; lower-case prose is not a level."""
    assert level_of('{"level":"warning","msg":"x"}') == logs_pb2.LEVEL_WARN
    assert level_of('{"severity":"CRITICAL"}') == logs_pb2.LEVEL_FATAL
    assert level_of("time=1 level=error msg=boom") == logs_pb2.LEVEL_ERROR
    assert level_of("2026-01-01 12:00:00 ERROR payment failed") == logs_pb2.LEVEL_ERROR
    assert level_of("INFO listening on :8080") == logs_pb2.LEVEL_INFO
    assert level_of("an error happened, said nobody") == 0
    assert level_of('{"msg":"no level"}') == 0


def test_kube_source_names_and_nanosecond_times() -> None:
    """The API's copy is named k8s:CONTAINER; the kubelet's stamp keeps all nine digits."""
    from tui.kube.logs import parse_line
    from tui.screens.logs_kube import source_id, time_ns

    sid = source_id("shop", "web-0", "app")
    assert short_name(sid, "app") == "k8s:app"
    line = parse_line(b"2026-01-02T03:04:05.123456789Z hello")
    assert time_ns(line) == 1767323045_123456789
    assert time_ns(parse_line(b"no stamp here")) == 0
