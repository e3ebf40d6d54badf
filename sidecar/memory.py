"""Hand start-up's transient memory back before idling.

Importing modules, building descriptors and dataclasses leaves garbage cycles
and free holes in the malloc heap. Once the server is up: collect them, freeze
what survives (later collections skip the long-lived start-up objects, so an
idle sidecar's GC does not walk them every time) and return free heap pages
to the kernel (glibc ``malloc_trim``; elsewhere a no-op).
"""

from __future__ import annotations

import ctypes
import gc


def settle() -> None:
    """Collect, freeze the survivors, trim the heap. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)
