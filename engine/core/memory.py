"""Memory the last stage freed, handed back to the system before the next stage starts.

glibc keeps freed heap pages in the process for reuse. After training (activations of
every step, the optimizer's moments) that is most of a GiB of pages nothing uses any more,
and every later stage of the same run started from it: in the quickstart, evaluate peaked
at 2.99 GiB and deploy at 3.09 GiB, far above what they hold themselves (bench/README.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys


def release_freed_memory() -> None:
    """Collect garbage cycles (a trainer and its model can be held by one), then ask glibc to
    return free heap pages (``malloc_trim``). Elsewhere (macOS, Windows, musl) only the first:
    those allocators return memory on their own terms."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
