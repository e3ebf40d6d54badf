"""Many log readers as one stream of batches: fair turns, line and byte bounds, cursors.

Readers are :class:`~agent._logs.FileReader` (or anything with the same
``take``/``cursor``/``at_eof``/``id``/``close``, like the recorder's). In raw
mode the items a reader hands out are sorted into records and chunks, and a
batch stops growing past ``RAW_BATCH_BYTES`` of chunk data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent._logs import RAW_BATCH_BYTES, Item
from agent.results.logs import LogBatch, RawChunk

if TYPE_CHECKING:
    from agent._logs import FileReader


def _size(item: Item) -> int:
    """Bytes of text an item carries (what a batch's size bound counts)."""
    return len(item.data) if isinstance(item, RawChunk) else len(item.raw)


class LogStream:
    """Batches from many readers; ``next_batch`` polls until a batch or the timeout.

    Args:
        readers: the file readers (and any other object with the same
            ``take``/``cursor``/``at_eof``/``id``/``close``).
        max_batch: records (lines) per batch.
        limit: stop after this many records (lines) in total (0 = no limit).
        raw: some readers hand out raw chunks: sort them out of the records
            and bound a batch's bytes too.
    """

    def __init__(
        self, readers: list[FileReader], *, max_batch: int, limit: int = 0, raw: bool = False
    ) -> None:
        self.readers = readers
        self.max_batch = max(1, max_batch)
        self.limit = limit
        self.raw = raw
        self.sent = 0
        self._next = 0
        self.live = False

    @property
    def done(self) -> bool:
        """The record limit was reached."""
        return bool(self.limit) and self.sent >= self.limit

    def cursors(self) -> dict[str, str]:
        """Every source's current cursor."""
        return {r.id: r.cursor for r in self.readers}

    def poll(self) -> LogBatch | None:
        """One pass over the readers; a batch when any had records, else None."""
        want = self.max_batch
        if self.limit:
            want = min(want, self.limit - self.sent)
        out: list[Item] = []
        got = nbytes = 0
        advanced: list[FileReader] = []
        n = len(self.readers)
        for i in range(n):
            if got >= want:
                break
            r = self.readers[(self._next + i) % n]
            before, k = r.cursor, len(out)
            got += r.take(want - got, out)
            if r.cursor != before:
                advanced.append(r)
            if self.raw:
                nbytes += sum(_size(x) for x in out[k:])
                if nbytes >= RAW_BATCH_BYTES:
                    break  # bound the message: the rest stays in the readers (and the files)
        self._next = (self._next + 1) % max(1, n)
        if not self.live and all(r.at_eof for r in self.readers):
            self.live = True
        if not out and not advanced:
            return None
        self.sent += got
        cursors = {r.id: r.cursor for r in advanced}
        if not self.raw:
            return LogBatch(tuple(out), cursors, live=self.live)  # type: ignore[arg-type]
        records = tuple(x for x in out if type(x) is not RawChunk)
        chunks = tuple(x for x in out if type(x) is RawChunk)
        return LogBatch(records, cursors, live=self.live, chunks=chunks)  # type: ignore[arg-type]

    def close(self) -> None:
        """Release every reader."""
        for r in self.readers:
            r.close()
