"""Reuse of freed CPU memory for large tensors (glibc).

glibc's ``malloc`` serves every block above ``M_MMAP_THRESHOLD`` (at most 32 MiB by default) with a fresh ``mmap``
and unmaps it on ``free``, and returns the top of the heap to the system beyond ``M_TRIM_THRESHOLD``. A CPU forward
pass at a large batch allocates such blocks for nearly every activation (CCT-7 at batch 128: 32-96 MiB each), so each
one costs page faults and zeroing by the kernel. Raising both thresholds keeps freed blocks in the process for the
next allocation of the same size, as CUDA's caching allocator does on GPUs.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_cpu_memory(mmap_threshold_bytes: int = 1 << 30) -> bool:
    """Let glibc keep freed blocks up to ``mmap_threshold_bytes`` (at most 1 GiB) for reuse instead of unmapping them.

    Process-wide and not undone: call it once at the start of a CPU script (``cct_throughput.py
    --keep_freed_cpu_memory`` does). The process keeps up to twice ``mmap_threshold_bytes`` of freed memory. Numerics
    are unchanged.

    Returns:
        ``True`` if both settings were applied, ``False`` where the C library is not glibc (macOS, Windows, musl).
    """
    if mmap_threshold_bytes <= 0:
        raise ValueError(f"mmap_threshold_bytes: expected a positive number of bytes, got {mmap_threshold_bytes}.")
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap_threshold_bytes = min(mmap_threshold_bytes, 2**30)  # mallopt takes a C int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold_bytes)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * mmap_threshold_bytes - 1)
    )
