"""The cached fast path of ``iso_epoch`` reads every timestamp as the general path does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent import _logparse
from agent._logparse import iso_epoch


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.123Z",
        "2024-01-01T00:00:00,5Z",
        "2024-01-01 00:00:00.123456789Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.12aZ",
        " 2024-01-01T00:00:00.250Z",
        "2024-01-01T00:00:00.\u0661\u0662Z",  # Arabic-Indic digits: not ASCII
        "2024-01-01T00:00:00+02:00",
        "2024-13-01T00:00:00.1Z",
        "2024-01-01T00:00Z",
    ],
)
def test_warm_cache_reads_like_cold(text: str) -> None:
    """Cold (general path) and warm (fast path once the second is cached) agree."""
    _logparse._iso_cache.clear()
    cold = iso_epoch(text)
    warm = iso_epoch(text)
    assert cold == warm


def test_fast_path_value() -> None:
    """A warm fractional timestamp is its second plus the fraction."""
    _logparse._iso_cache.clear()
    base = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC).timestamp()
    assert iso_epoch("2024-05-01T12:30:15Z") == base
    assert iso_epoch("2024-05-01T12:30:15.75Z") == base + 0.75
    assert iso_epoch("2024-05-01T12:30:15,001Z") == pytest.approx(base + 0.001)
