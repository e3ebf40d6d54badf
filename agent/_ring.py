"""A bounded ring of sequenced items with blocking waits, for the recorder's history.

Items get consecutive sequence numbers starting at 1; the oldest are evicted
when the ring is full. A reader asks for everything after a sequence number
and learns how many items it missed to eviction (an explicit gap, never a
silent one).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Ring(Generic[T]):
    """Thread-safe bounded ring buffer.

    Args:
        size: most items kept (at least 1).
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: deque[T] = deque(maxlen=self.size)
        self._next = 1  # sequence of the next item appended
        self._cond = threading.Condition()

    def append(self, make: Callable[[int], T]) -> T:
        """Append ``make(seq)`` under the lock (so sequence order is append order)."""
        with self._cond:
            item = make(self._next)
            self._items.append(item)
            self._next += 1
            self._cond.notify_all()
            return item

    @property
    def first_seq(self) -> int:
        """Sequence of the oldest item kept (== next_seq when empty)."""
        with self._cond:
            return self._next - len(self._items)

    @property
    def next_seq(self) -> int:
        """Sequence the next item will get."""
        with self._cond:
            return self._next

    def after(self, seq: int, limit: int = 0) -> tuple[list[T], int]:
        """Items with sequence > ``seq`` (at most ``limit``, 0 = all) and how many were evicted.

        Returns:
            (items, lost): ``lost`` counts items after ``seq`` that are gone.
        """
        with self._cond:
            first = self._next - len(self._items)
            lost = max(0, first - (seq + 1))
            start = max(0, seq + 1 - first)
            n = len(self._items) - start
            if limit:
                n = min(n, limit)
            items = list(itertools.islice(self._items, start, start + max(0, n)))
            return items, lost

    def last(self, n: int) -> list[T]:
        """The newest ``n`` items, oldest first."""
        with self._cond:
            k = min(n, len(self._items))
            return list(self._items)[len(self._items) - k :]

    def wait(self, seq: int, timeout: float) -> bool:
        """Block until an item after ``seq`` exists (or ``timeout``); True if one does."""
        with self._cond:
            return self._cond.wait_for(lambda: self._next > seq + 1, timeout)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
