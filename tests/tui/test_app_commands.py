"""The command palette's parser: what a person types becomes the right action."""

from __future__ import annotations

import pytest

from tui.commands import parse


@pytest.mark.parametrize(
    ("typed", "kind", "arg"),
    [
        ("1234", "pid", "1234"),
        ("pid 42", "pid", "42"),
        ("#7", "pid", "7"),
        ("/etc/resolv.conf", "open", "/etc/resolv.conf"),
        ("open /etc/hosts", "open", "/etc/hosts"),
        ("follow /var/log/app.log", "follow", "/var/log/app.log"),
        ("tail /var/log/app.log", "follow", "/var/log/app.log"),
        ("dns db.internal", "probe", "dns db.internal"),
        ("probe tcp db:5432", "probe", "tcp db:5432"),
        ("http://svc:8080/healthz", "probe", "http http://svc:8080/healthz"),
        ("target 10.0.0.5:7777", "target", "10.0.0.5:7777"),
        ("127.0.0.1:7777", "target", "127.0.0.1:7777"),
        ("[::1]:7777", "target", "[::1]:7777"),
        ("pod/web-0", "target", "pod/web-0"),
        ("target deploy/checkout", "target", "deploy/checkout"),
    ],
)
def test_parse_first_action(typed: str, kind: str, arg: str) -> None:
    """Each form maps to its action and argument, best match first."""
    action = parse(typed)[0]
    assert (action.kind, action.arg) == (kind, arg)


def test_bare_path_offers_open_and_follow() -> None:
    """A bare path offers both opening and following it."""
    assert [a.kind for a in parse("/var/log/app.log")] == ["open", "follow"]


@pytest.mark.parametrize("typed", ["", "   ", "hello world", "host:notaport"])
def test_nonsense_is_no_action(typed: str) -> None:
    """Text that means nothing yields no action (the palette then fuzzy-matches commands)."""
    assert parse(typed) == []
