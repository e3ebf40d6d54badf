"""The sidecar's typed config: sources and precedence, safe defaults, validation, redaction."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.__main__ import load_config
from sidecar.config import (
    Config,
    ConfigError,
    from_env,
    from_mapping,
    is_loopback,
    token_hashes,
    validate,
)
from tests.conftest import ROOT, new_token


def args(
    config: str | None = None, sets: list[str] | None = None, listen: str | None = None
) -> argparse.Namespace:
    return argparse.Namespace(config=config, set=sets or [], listen=listen)


def test_read_only_by_default() -> None:
    """Everything that changes the target or widens what is shown is off by default."""
    c = Config()
    assert not c.allow_signals
    assert not c.allow_probes
    assert not c.reveal_secrets
    assert not c.allow_sensitive_paths
    assert not c.allow_proc_sys
    assert not c.reflection
    assert not c.insecure_no_auth
    assert c.listen.startswith("127.0.0.1:")


def test_precedence_defaults_file_env_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag beats BORESCOPE_* env, which beats the file, which beats the default."""
    f = tmp_path / "c.toml"
    f.write_text('max_concurrent_rpcs = 10\nallow_probes = true\nlisten = "127.0.0.1:1"\n')
    monkeypatch.setenv("BORESCOPE_MAX_CONCURRENT_RPCS", "20")
    monkeypatch.setenv("BORESCOPE_LISTEN", "127.0.0.1:2")
    c = load_config(args(str(f), ["listen=127.0.0.1:3"]))
    assert c.max_concurrent_rpcs == 20  # env over file
    assert c.allow_probes is True  # file over default
    assert c.listen == "127.0.0.1:3"  # flag over env
    assert load_config(args(str(f), [], listen="127.0.0.1:4")).listen == "127.0.0.1:4"


def test_json_file_and_types(tmp_path: Path) -> None:
    """A JSON file works too, and strings are parsed into the field's type."""
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"allowed_signals": ["SIGTERM"], "max_stream_age_s": "12.5"}))
    c = load_config(args(str(f), ["container_names=a=web,b=db", "allow_signals=yes"]))
    assert c.allowed_signals == ("SIGTERM",)
    assert c.max_stream_age_s == 12.5
    assert dict(c.container_names) == {"a": "web", "b": "db"}
    assert c.allow_signals is True


def test_bad_keys_and_values_name_the_key() -> None:
    """An unknown key lists the known ones; a bad value names its key."""
    with pytest.raises(ConfigError, match=r"unknown config key 'alow_signals'.*allow_signals"):
        from_mapping({"alow_signals": "true"})
    with pytest.raises(ConfigError, match=r"'allow_probes'.*not a boolean"):
        from_mapping({"allow_probes": "maybe"})
    with pytest.raises(ConfigError, match="'max_concurrent_rpcs'"):
        from_mapping({"max_concurrent_rpcs": "many"})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(args(None, ["allow_probes"]))


def test_env_ignores_unrelated_variables() -> None:
    """Only BORESCOPE_<known key> is read; other BORESCOPE_* (the client's) are ignored."""
    c = from_env({"BORESCOPE_TOKEN": "raw", "BORESCOPE_ADDR": "x", "BORESCOPE_ALLOW_PROBES": "1"})
    assert c.allow_probes is True


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:7777", True),
        ("127.1.2.3:1", True),
        ("[::1]:7777", True),
        ("localhost:7777", True),
        ("unix:/tmp/borescope.sock", True),
        ("0.0.0.0:7777", False),
        ("[::]:7777", False),
        ("10.0.0.5:7777", False),
        ("pod.example:7777", False),
    ],
)
def test_loopback_detection(address: str, loopback: bool) -> None:
    """Which listen addresses count as reachable only from inside the pod."""
    assert is_loopback(address) is loopback


def test_token_hashes_from_value_and_file(tmp_path: Path) -> None:
    """Hashes come from token_sha256 (comma-separated) and the file (one a line, # comments)."""
    h1, h2, h3 = (new_token()[1] for _ in range(3))
    f = tmp_path / "h"
    f.write_text(f"# current\n{h2.upper()}\n\n{h3}\n")
    assert token_hashes(Config(token_sha256=f"{h1}", token_sha256_file=str(f))) == (h1, h2, h3)
    with pytest.raises(ConfigError, match="cannot read token_sha256_file"):
        token_hashes(Config(token_sha256_file=str(tmp_path / "missing")))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "no authentication configured"),
        ({"insecure_no_auth": True, "listen": "0.0.0.0:1"}, "insecure_no_auth is refused"),
        ({"token_sha256": "T", "listen": "0.0.0.0:1"}, "without TLS"),
        ({"token_sha256": "T", "tls_cert": "/c"}, "both tls_cert and tls_key"),
        ({"token_sha256": "T", "max_concurrent_rpcs": 0}, "must be > 0"),
        ({"token_sha256": "T", "default_deadline_s": -1}, "must be > 0"),
    ],
)
def test_validate_refuses_unsafe_or_broken_configs(
    changes: dict[str, object], message: str
) -> None:
    """Each unsafe or unworkable combination is refused with a message saying what to set."""
    if changes.get("token_sha256") == "T":
        changes = {**changes, "token_sha256": new_token()[1]}
    with pytest.raises(ConfigError, match=message):
        validate(Config(**changes))  # type: ignore[arg-type]


def test_start_up_log_has_the_config_with_secrets_redacted(tmp_path: Path) -> None:
    """`serve` logs its whole config at start-up as JSON, with the token hash redacted."""
    _token, digest = new_token()
    p = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "BORESCOPE_TOKEN_SHA256": digest},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert p.stdout is not None
        out = b""
        for line in p.stdout:
            out += line
            if line.startswith(b"listening on"):
                break
        logged = [json.loads(x) for x in out.splitlines() if x.startswith(b"{")]
        start = next(x for x in logged if x.get("event") == "listening")
        assert start["config"]["token_sha256"] == "<redacted>"
        assert start["config"]["max_concurrent_rpcs"] == Config().max_concurrent_rpcs
        assert digest.encode() not in out
    finally:
        p.terminate()
        p.wait(10)
