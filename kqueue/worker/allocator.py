"""The worker process's malloc: one heap for all its threads, so freed memory is given back.

glibc gives each new thread an arena of its own at its first allocation, up to eight per core.
Each arena keeps up to its trim threshold of freed memory (twice the mmap threshold, which
rises to the biggest mapped block freed, up to 32 MB), so a worker whose inline threads take
turns with 2-5 MB jobs ends up holding several arenas' worth of free memory, and every pool or
isolated process forked from it later comes to own a copy of those pages as the worker reuses
them. Measured side by side on the I/O mix (``experiments/malloc_arenas.py --rounds 3``, see
``docs/DECISIONS.md``): peak PSS 407 MB with glibc's default, 261 MB with one arena, the same
throughput and waits. Python threads allocate under the GIL, so one arena costs them no
parallelism.

``kqueue run`` calls ``limit_arenas()`` before it starts any thread. An operator who wants
another limit sets ``MALLOC_ARENA_MAX`` or glibc's ``arena_max`` tunable (``GLIBC_TUNABLES``),
and it stands.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import tempfile
from pathlib import Path

log = logging.getLogger("kqueue.worker.allocator")

#: ``mallopt`` parameter number of ``M_ARENA_MAX`` (glibc's malloc.h).
M_ARENA_MAX = -8
#: The environment variable glibc reads for the same setting.
ARENA_MAX_ENV = "MALLOC_ARENA_MAX"
#: glibc's tunables variable, which may set it as ``glibc.malloc.arena_max=N``.
TUNABLES_ENV = "GLIBC_TUNABLES"


def limit_arenas(arenas: int = 1) -> bool:
    """Make glibc's malloc use at most ``arenas`` heaps in this process (and in its forks).

    Call it before the process starts threads. glibc fixes its arena limit the first time it
    needs one (a second thread's first allocation), so a call after that changes nothing, and
    arenas that already exist stay in use either way.

    Args:
        arenas: the most arenas, at least 1.

    Returns:
        True when the limit was set; False on a C library other than glibc, or when the
        environment sets the limit (``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES``' ``arena_max``:
        the operator's choice stands).

    Raises:
        ValueError: ``arenas`` below 1 (glibc would accept it and do nothing).
    """
    if arenas < 1:
        raise ValueError(f"arenas must be at least 1, not {arenas}")
    if os.environ.get(ARENA_MAX_ENV) or "arena_max" in os.environ.get(TUNABLES_ENV, ""):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = mallopt(M_ARENA_MAX, arenas) == 1
    if not applied:
        log.warning("mallopt(M_ARENA_MAX, %d) failed; glibc keeps an arena per thread", arenas)
    return applied


def arenas_in_use() -> int | None:
    """How many arenas glibc's malloc has in this process (``malloc_info``); None if not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    with tempfile.NamedTemporaryFile(suffix=".xml") as report:
        stream = libc.fopen(report.name.encode(), b"w")
        if not stream:
            return None
        try:
            libc.malloc_info(0, stream)
        finally:
            libc.fclose(stream)
        return Path(report.name).read_text().count("<heap nr=")
