"""Give freed memory back to the operating system between the steps that hold the whole history.

All steps of a `gate-pipeline run` share one process (`execute_in_process`), and neither glibc's allocator
nor Arrow's memory pool returns freed pages on their own: the pages the series step freed stayed resident
under the statistics and decision steps, so their peaks stacked. `release_memory()` at the start of each
heavy step hands back what the previous step freed; it changes no result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

import pyarrow as pa


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_memory(collect: bool = True) -> None:
    """Collect garbage (unless ``collect`` is False: what was freed by reference counting alone, without a
    collection's pass over every object), then return free pages of Arrow's pool and of the C heap to the OS."""
    if collect:
        gc.collect()
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
