"""Secret canaries: env, argv, a mounted Secret file and a log line.

The app (chrooted, own mount namespace) carries a canary in each place; a real
``python -m sidecar serve`` watches it. Every string-returning RPC is called;
no response (nor error detail) may carry the env, argv or file canary unless
its reveal switch is on, and the sidecar's stdout (the audit log) never
carries any canary, the log line's included.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent import Redactor
from sidecar.config import DEFAULT_SECRET_PATTERNS
from tests.reliability._pod import LOG_PATH, App, SidecarProc, canary_app, is_root
from tests.reliability._walk import walk

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: mount namespace, chroot, tmpfs"),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    """The canary app, shared by the module's tests (they only read)."""
    with canary_app() as a:
        yield a


def _run(app: App, *extra: str) -> tuple[dict[str, tuple[str, bytes]], bytes]:
    settings = [f"local_root={app.pid}", f"log_sources={LOG_PATH}", *extra]
    with SidecarProc(settings) as sc:
        c = sc.client()
        try:
            seen = walk(c, app)
        finally:
            c.close()
    return seen, sc.output()


def _leaks(seen: dict[str, tuple[str, bytes]], canary: str) -> list[str]:
    return [name for name, (_, data) in seen.items() if canary.encode() in data]


def test_no_hidden_canary_in_any_response_by_default(app: App, figures: object) -> None:
    """With default config, none of ~30 RPCs returns the env, argv or Secret-file canary,
    while the walk really reached the app (its log canary, its pid and its secret's name
    do come back), and reading the Secret is refused with PERMISSION_DENIED."""
    seen, _ = _run(app)
    for kind, canary in app.canaries.hidden().items():
        assert _leaks(seen, canary) == [], f"{kind} canary leaked"
    assert _leaks(seen, app.canaries.log), "control: the walk read the app's log"
    assert b"password" in seen["ListDir(secret dir)"][1], "control: the Secret dir was listed"
    assert str(app.pid).encode() in seen["ListProcesses(app)"][1]
    assert b"--db-password=***" in seen["ListProcesses(app)"][1]
    for name in ("ReadFile(secret)", "Download(secret)", "FollowFile(secret)"):
        assert seen[name][0] == "PERMISSION_DENIED", (name, seen[name])
    assert seen["ReadFile(/proc/self/environ)"][0] == "PERMISSION_DENIED"
    errors = {n: code for n, (code, _) in seen.items() if code not in ("OK", "PERMISSION_DENIED")}
    assert errors == {}, errors
    figures.add("test_canaries", "RPCs walked per config", len(seen), "calls")  # type: ignore[attr-defined]


def test_reveal_switches_show_exactly_their_canary(app: App) -> None:
    """reveal_secrets=true shows the env and argv canaries (GetProcess, ListProcesses) but
    not the Secret file; allow_sensitive_paths=true shows the file (ReadFile, Download)
    but not env/argv. Proves the walk would see each canary if it leaked."""
    seen, _ = _run(app, "reveal_secrets=true")
    assert "GetProcess(all sections)" in _leaks(seen, app.canaries.env)
    assert "ListProcesses(app)" in _leaks(seen, app.canaries.argv)
    assert _leaks(seen, app.canaries.file) == []
    seen, _ = _run(app, "allow_sensitive_paths=true")
    assert {"ReadFile(secret)", "Download(secret)"} <= set(_leaks(seen, app.canaries.file))
    assert _leaks(seen, app.canaries.env) == [] and _leaks(seen, app.canaries.argv) == []


def test_audit_log_never_carries_content(app: App) -> None:
    """The sidecar's stdout (audit records) carries none of the four canaries even when
    every reveal switch is on and the content really went to the client; it does carry
    one record per call with the resolved path of the Secret."""
    seen, out = _run(app, "reveal_secrets=true", "allow_sensitive_paths=true")
    assert _leaks(seen, app.canaries.file) and _leaks(seen, app.canaries.env)
    for canary in (*app.canaries.hidden().values(), app.canaries.log):
        assert canary.encode() not in out
    assert out.count(b'"event":"rpc"') >= len(seen)
    assert b"/etc/app-secret/password" in out


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (("app", "--db-password=s3"), ("app", "--db-password=***")),
        (("app", "--api-token", "s3", "-v"), ("app", "--api-token", "***", "-v")),
        (("env", "AWS_SECRET_ACCESS_KEY=s3", "x"), ("env", "AWS_SECRET_ACCESS_KEY=***", "x")),
        (("app", "--port=80", "--password"), ("app", "--port=80", "--password")),
        (("app", "--user", "bob"), ("app", "--user", "bob")),
    ],
)
def test_argv_redaction_rules(argv: tuple[str, ...], shown: tuple[str, ...]) -> None:
    """Regression (argv canary leaked through ListProcesses): secret-looking options keep
    their name and lose their value, the value after a bare secret flag is hidden, other
    arguments stay."""
    assert Redactor(DEFAULT_SECRET_PATTERNS).argv(argv) == shown
    assert Redactor(DEFAULT_SECRET_PATTERNS, reveal=True).argv(argv) == argv
