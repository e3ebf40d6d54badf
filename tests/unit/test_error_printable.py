"""Status messages are always valid UTF-8 (sidecar/interceptors/errors.py)."""

from __future__ import annotations

import os

from protos import files_pb2
from sidecar.interceptors.errors import Undecodable, lenient, printable


def test_plain_text_is_unchanged() -> None:
    assert printable("/etc/hostname: no such file — ok") == "/etc/hostname: no such file — ok"


def test_undecodable_path_bytes_are_shown_as_escapes() -> None:
    msg = printable(os.fsdecode(b"/bad-\xff\xfe/x") + ": no such file")
    assert msg == "/bad-\\xff\\xfe/x: no such file"
    msg.encode("utf-8")


def test_other_lone_surrogates_are_escaped() -> None:
    msg = printable("a\ud800b")
    assert msg == "a\\ud800b"
    msg.encode("utf-8")


def test_lenient_deserializer_returns_undecodable_with_the_type_name() -> None:
    des = lenient(files_pb2.StatRequest.FromString, "/borescope.v1.Files/Stat")
    assert des(files_pb2.StatRequest(path="/x").SerializeToString()).path == "/x"
    bad = des(b"\xff\xff\xff")
    assert isinstance(bad, Undecodable)
    assert "borescope.v1.StatRequest" in bad.message
    assert bad.message.startswith("/borescope.v1.Files/Stat: ")
