"""The process's heap policy: keep freed memory for the next batch instead of returning it (glibc).

A batch evaluation allocates and frees ~10-20 MB of arrays (targets, every fold's curves and
trades, the stitched curve). glibc's default pads a heap extension by only 128 KB and gives freed
memory at the top of the heap back to the system, so every batch pays again for getting the
same memory back and touching it fresh: measured at half an evaluation's cost with 32 candidates
on SPX (``bench/iteration.py``). ``M_TOP_PAD`` keeps that much freed memory in the heap (resident
memory is at most that much higher per process). Elsewhere than glibc there is no ``mallopt`` and
nothing changes.
"""

import ctypes

_M_TOP_PAD = -2  # glibc's malloc.h


def keep_freed_memory(megabytes):
    """Set glibc's M_TOP_PAD to ``megabytes`` (0 leaves the default); True if it was applied."""
    if megabytes <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_TOP_PAD, int(megabytes) << 20))
