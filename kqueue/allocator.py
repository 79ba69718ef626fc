"""The worker process's malloc: one heap for all its threads, so freed memory is given back.

glibc gives each thread that allocates while another holds the heap an arena of its own (up to
eight per core). Each arena keeps up to its trim threshold of freed memory (twice the mmap
threshold, which rises to the biggest block freed, up to 32 MB), so a worker whose inline
threads take turns with 2-5 MB jobs ends up holding several arenas' worth of free memory, and
every pool or isolated process forked from it later comes to own a copy of those pages as the
worker reuses them. Measured on the I/O mix of ``experiments/sim_vs_real.py`` (see
``docs/DECISIONS.md``): peak PSS 402 MB with glibc's default, 255 MB with one arena. Python
threads allocate under the GIL, so one arena costs them no parallelism.

``kqueue run`` calls ``limit_arenas()`` before it starts any thread. An operator who wants
glibc's choice sets ``MALLOC_ARENA_MAX`` (glibc reads it at start, and it wins).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import tempfile
from pathlib import Path

log = logging.getLogger("kqueue.allocator")

#: ``mallopt`` parameter number of ``M_ARENA_MAX`` (glibc's malloc.h).
M_ARENA_MAX = -8
#: The environment variable glibc reads for the same setting.
ARENA_MAX_ENV = "MALLOC_ARENA_MAX"


def limit_arenas(arenas: int = 1) -> bool:
    """Make glibc's malloc use at most ``arenas`` heaps in this process (and in its forks).

    Call it before the process starts threads: a thread keeps the arena it was given.

    Returns:
        True when the limit was set; False on a C library other than glibc, or when
        ``MALLOC_ARENA_MAX`` is set in the environment (the operator's choice stands).
    """
    if os.environ.get(ARENA_MAX_ENV):
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
