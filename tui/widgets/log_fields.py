"""Structured log lines (JSON objects, logfmt) as a message and ``key=value`` fields.

The home screen shows a JSON line lnav-style: its message, then the other
fields as ``key=value`` (the time and level already have their columns).
The sidecar is asked for DETAIL_BASIC records (no field map: cheaper on the
wire and on both ends), so the line is taken apart here, from its raw text.
The key lists mirror the sidecar's parser (``agent/_logparse.py``; the TUI
never imports the agent): the keys it took the time, level and message
from are the ones left out of the fields.

``level_of`` reads a level for lines the sidecar did not parse (the app's
stdout read client-side through the Kubernetes API).

Everything returned is sanitised: a JSON string may decode to control
characters (``"\\u001b]52;..."``) that must never reach the terminal.
"""

from __future__ import annotations

import json
import re

from tui.sanitize import sanitize

TIME_KEYS = ("time", "ts", "timestamp", "@timestamp", "t", "datetime", "date")
LEVEL_KEYS = ("level", "lvl", "severity", "levelname", "loglevel", "log.level", "@level")
MSG_KEYS = ("msg", "message", "@message", "log", "text", "event")
#: A value longer than this is cut in the one-line form (pretty JSON shows it whole).
MAX_VALUE = 512

_LOGFMT_PAIR = re.compile(r'([\w.@/-]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
_LOGFMT_HEAD = re.compile(r"\s*[\w.@/-]+=")


#: Level words -> protos Level numbers (as the sidecar reads them).
LEVELS = {
    **dict.fromkeys(("trace", "trc"), 1),
    **dict.fromkeys(("debug", "dbg", "fine"), 2),
    **dict.fromkeys(("info", "inf", "information", "informational", "notice"), 3),
    **dict.fromkeys(("warn", "warning", "wrn"), 4),
    **dict.fromkeys(("error", "err", "eror", "severe"), 5),
    **dict.fromkeys(("fatal", "critical", "crit", "panic", "emerg", "emergency", "alert"), 6),
}
_UPPER_LEVEL = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRITICAL|PANIC)\b"
)


def level_of(text: str) -> int:
    """The level of a line the sidecar did not parse (client-side sources): the level key of
    a JSON or logfmt line, else an upper-case level word near the start; 0 when none."""
    if text[:1] == "{" or "level=" in text:
        obj = _mapping(text)
        if obj is not None:
            key = _first(obj, LEVEL_KEYS)
            if key is not None:
                return LEVELS.get(str(obj[key]).strip().lower(), 0)
    m = _UPPER_LEVEL.search(text, 0, 160)
    return LEVELS[m.group(1).lower()] if m else 0


def structure(text: str) -> tuple[str, str] | None:
    """(message, fields) of a JSON-object or logfmt line; None for anything else.

    ``fields`` is ``key=value`` pairs separated by spaces, in the line's own
    order, without the time, level and message keys. Values that need it are
    quoted (JSON string syntax); nested objects and arrays are compact JSON.
    """
    obj = _mapping(text)
    return _split(obj) if obj else None


def _mapping(text: str) -> dict[str, object] | None:
    """The key/value pairs of a JSON-object or logfmt line (None: neither)."""
    if text[:1] == "{":
        if text[-1:] != "}":
            return None  # cut at the line cap, or not JSON
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None
    if "=" in text and ("level=" in text or "msg=" in text) and _LOGFMT_HEAD.match(text):
        pairs: dict[str, object] = {}
        for k, v in _LOGFMT_PAIR.findall(text):
            if v[:1] == '"':
                try:
                    pairs[k] = json.loads(v)
                except ValueError:
                    pairs[k] = v[1:-1]
            else:
                pairs[k] = v
        return pairs
    return None


def _first(obj: dict[str, object], keys: tuple[str, ...], strings: bool = False) -> str | None:
    for k in keys:
        v = obj.get(k)
        if v is not None and (not strings or isinstance(v, str)):
            return k
    return None


def _split(obj: dict[str, object]) -> tuple[str, str]:
    msg_key = _first(obj, MSG_KEYS, strings=True)
    skip = {_first(obj, TIME_KEYS), _first(obj, LEVEL_KEYS), msg_key}
    message = str(obj[msg_key]) if msg_key is not None else ""
    parts = [f"{k}={_value(v)}" for k, v in obj.items() if k not in skip]
    return _safe(message), _safe(" ".join(parts))


_LITERALS = {True: "true", False: "false", None: "null"}


def _value(v: object) -> str:
    """A value as shown after ``key=``: bare when it can be, else JSON (quoted, escaped)."""
    # json.dumps costs ~2.5 µs a call: the common scalars are done by hand (the
    # home screen formats every record it takes, 10k a second under load).
    s: str
    if isinstance(v, str):
        bare = v and v.isprintable() and " " not in v and '"' not in v and "=" not in v
        s = v if bare else json.dumps(v, ensure_ascii=False)
    elif isinstance(v, bool) or v is None:
        s = _LITERALS[v]
    elif isinstance(v, int):
        s = str(v)
    else:  # floats (NaN, Infinity as JSON writes them), objects, arrays
        s = json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)
    return s if len(s) <= MAX_VALUE else s[:MAX_VALUE] + "…"


def _safe(s: str) -> str:
    """Sanitised, with tabs expanded (a tab would put the columns after it out of line)."""
    if s.isprintable():
        return s
    return sanitize(s.replace("\t", " "))
