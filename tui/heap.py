"""Keep the cycle collector out of the way of key presses while logs stream in.

At 10k lines/s the app allocates fast, and with CPython's defaults it ran a
full (generation 2) collection every two seconds or so. A full pass walks
every tracked object, and most of them were built at start-up and live as
long as the app (modules, classes, functions, the Textual app and screens):
some 100k objects, 50-70 ms a pass on a 2-core machine, enough to hold a key
press past 100 ms (benchmarks/bench_tui_ingest.py).

``settle()`` therefore moves what is alive into the permanent generation
(``gc.freeze``): later passes walk only what was made since (10-20 ms). At
start-up it collects the young generations first (a few ms), not a full
pass: that costs as much as the pauses it saves (50 ms here, 200-350 ms in
a test process with many apps behind it, long enough to stall an in-process
sidecar), and the little garbage already old at start-up stays frozen until
``release()``. After a target switch (``full=True``) the old screens are
garbage in the oldest generation: a full pass first, or each switch would
freeze another set of them. It also raises the young-generation threshold from 700 to
``YOUNG_THRESHOLD`` net allocations: most of what a frame allocates is freed
by reference counting before a collection sees it, so collections get rare
(about one full pass in 30 s instead of ten) and fewer objects are promoted.
Cyclic garbage is still collected, just in larger, rarer steps.

``release()`` undoes both: before screens are thrown away (a target switch)
and when the app ends, so frozen cycles are never leaked and a process that
outlives the app (tests) gets the collector as it was.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
_saved: list[tuple[int, ...]] = []


def settle(full: bool = False) -> None:
    """Freeze what is alive now and make young collections rarer (idempotent).

    Args:
        full: collect every generation first (after screens were thrown away).
    """
    if full:
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
    if not _saved:
        _saved.append(gc.get_threshold())
        young, *older = _saved[0]
        gc.set_threshold(max(young, YOUNG_THRESHOLD), *older)


def release() -> None:
    """Hand frozen objects back to the collector and restore its thresholds."""
    gc.unfreeze()
    if _saved:
        gc.set_threshold(*_saved.pop())


def frozen() -> int:
    """How many objects are frozen (0: none)."""
    return gc.get_freeze_count()
