"""Hand start-up's transient memory back before idling, and keep idling cheap.

Importing modules, building descriptors and dataclasses leaves garbage cycles
and free holes in the malloc heap. Once the server is up: collect them, freeze
what survives (later collections skip the long-lived start-up objects, so an
idle sidecar's GC does not walk them every time) and return free heap pages
to the kernel (glibc ``malloc_trim``). Then fix glibc's thresholds so the
recorder's /proc read buffers (1 MiB in ``agent._common.read_bytes``, 4 MiB for
/proc/PID/net/*; several per sample) come from the heap: above the default
128 KiB threshold each was an mmap, a page fault, an mremap and a munmap. (The
Files service raises both further on its first call, for its download chunks.)
Elsewhere than glibc: a no-op.
"""

from __future__ import annotations

import ctypes
import gc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Requests below this come from the heap (the reads above are up to 4 MiB).
MMAP_THRESHOLD = 8 << 20
#: Free memory at the heap's top beyond this goes back to the kernel.
TRIM_THRESHOLD = 16 << 20


def malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's mmap and trim thresholds (bytes); False where there is no mallopt."""
    libc = ctypes.CDLL(None)
    if getattr(libc, "mallopt", None) is None:  # not glibc (musl): nothing changes
        return False
    libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
    return True


def settle() -> None:
    """Collect, freeze the survivors, trim the heap, set thresholds. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    libc = ctypes.CDLL(None)
    if getattr(libc, "malloc_trim", None) is None:
        return
    libc.malloc_trim(0)
    malloc_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)
