"""What the idle-footprint work made lazy still agrees with what it stands for.

The static service names, the reflection service name and the argparse-free
``serve`` parser are copies; each is checked against its original. The agent
facade resolves every public name on first use and imports nothing up front.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import agent
from sidecar.__main__ import parse_args, parse_with_argparse
from sidecar.argv import parse_serve
from sidecar.reflection import SERVICE_NAME
from sidecar.services import EAGER, SERVICES
from tests.conftest import ROOT


def test_static_service_names_match_the_modules() -> None:
    for mod, names in SERVICES.items():
        module = importlib.import_module(f"sidecar.services.{mod}")
        assert tuple(module.SERVICE_NAMES) == names, mod
    assert set(SERVICES) >= EAGER


def test_reflection_service_name_matches_grpc_reflection() -> None:
    from grpc_reflection.v1alpha import reflection

    assert SERVICE_NAME == reflection.SERVICE_NAME


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["serve", "--listen", "127.0.0.1:7777"],
        ["serve", "--listen=0.0.0.0:1", "--console-logs"],
        ["serve", "--config", "/etc/b.toml", "--set", "a=1", "--set=b=x=y", "--set", "c="],
        ["serve", "--set", "reflection=true", "--listen", "a:1", "--listen", "b:2"],
        ["serve", "--set="],
    ],
)
def test_fast_serve_parser_agrees_with_argparse(argv: list[str]) -> None:
    fast = parse_serve(argv)
    assert fast is not None
    assert vars(fast) == vars(parse_with_argparse(argv))
    assert vars(parse_args(argv)) == vars(fast)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["token"],
        ["serve", "-h"],
        ["serve", "--help"],
        ["serve", "--lis", "x"],  # an abbreviation: argparse's rules
        ["serve", "--listen"],  # a missing value: argparse's message
        ["serve", "--listen", "--config", "f"],
        ["serve", "--set", ""],
        ["serve", "--console-logs=1"],
        ["serve", "extra"],
        ["serve", "--", "--listen", "x"],
        ["--listen", "x", "serve"],
    ],
)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert parse_serve(argv) is None
    try:
        want = vars(parse_with_argparse(argv))
    except SystemExit as e:
        with pytest.raises(SystemExit) as got:
            parse_args(argv)
        assert got.value.code == e.code
    else:
        assert vars(parse_args(argv)) == want


def test_agent_facade_resolves_every_public_name() -> None:
    for name in agent.__all__:
        assert getattr(agent, name) is not None, name
    assert set(agent.__all__) <= set(dir(agent))
    with pytest.raises(AttributeError):
        _ = agent.no_such_name  # type: ignore[attr-defined]
    from agent import _fs_walk  # submodules still import through the facade

    assert agent.du is _fs_walk.du


def test_importing_agent_loads_no_reader() -> None:
    """``import agent`` alone loads the facade and agent.errors, nothing else of agent."""
    code = "import sys, agent; print(sorted(m for m in sys.modules if m.startswith('agent')))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['agent', 'agent.errors']"
