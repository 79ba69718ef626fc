"""What processes hold, read from ``/proc``: PSS, private and resident memory, descriptors.

For the soak (``experiments/soak.py``), which watches a worker's tree for leaks. PSS divides each
shared page among the processes mapping it, so the PSS of a worker and its pool rises when an
isolated child that shared their pages exits, leak or no leak. ``anon_unique_mb`` counts what
does not move with sharing: the distinct physical pages of anonymous memory (heap, arenas,
stacks: where a leak grows) mapped by any process of a set, each page once however many of
them map it. It reads ``/proc/PID/pagemap``, whose page frame numbers only root may see; for
anyone else it returns NaN.

Every function returns zeros (or NaN) for a process that is gone: a child may exit mid-read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MB = 1024 * 1024
_PRESENT = np.uint64(1 << 63)
_PFN_MASK = np.uint64((1 << 55) - 1)
#: Mappings counted as anonymous memory: no file behind them, or the heap or a stack.
_ANON_NAMES = ("", "[heap]", "[stack]")


@dataclass(frozen=True)
class ProcMemory:
    """One process's memory (``smaps_rollup``, MB) and open descriptors."""

    pss_mb: float = 0.0
    uss_mb: float = 0.0
    rss_mb: float = 0.0
    fds: int = 0


def read_process(pid: int) -> ProcMemory:
    """PSS, USS (private clean + dirty), RSS in MB and the descriptor count of ``pid``."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("Pss", "Rss", "Private_Clean", "Private_Dirty"):
                    fields[name] = int(rest.split()[0])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return ProcMemory()
    uss_kb = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return ProcMemory(fields.get("Pss", 0) / 1024, uss_kb / 1024, fields.get("Rss", 0) / 1024, fds)


def _anon_ranges(pid: int) -> list[tuple[int, int]]:
    """The readable anonymous mappings of ``pid`` as (first page, page count)."""
    ranges = []
    with open(f"/proc/{pid}/maps") as handle:
        for line in handle:
            parts = line.split(maxsplit=5)
            name = parts[5].strip() if len(parts) > 5 else ""
            if parts[1].startswith("-") or name not in _ANON_NAMES:
                continue  # a reservation nothing can touch, or a file
            start, end = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((start // _PAGE_BYTES, (end - start) // _PAGE_BYTES))
    return ranges


def _frames(pid: int) -> np.ndarray:
    """The physical frame numbers of the resident anonymous pages of ``pid``."""
    found = []
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        for first, count in _anon_ranges(pid):
            pagemap.seek(first * 8)
            entries = np.frombuffer(pagemap.read(count * 8), dtype=np.uint64)
            present = entries[(entries & _PRESENT) != 0] & _PFN_MASK
            if present.size and not present.any():
                raise PermissionError("page frame numbers are hidden (not root)")
            found.append(present)
    return np.concatenate(found) if found else np.zeros(0, np.uint64)


def anon_unique_mb(pids: Iterable[int]) -> float:
    """MB of distinct anonymous pages the processes ``pids`` map together; NaN without root."""
    frames = []
    for pid in pids:
        try:
            frames.append(_frames(pid))
        except FileNotFoundError:
            continue  # it exited
        except (PermissionError, ProcessLookupError, OSError):
            return float("nan")
    if not frames:
        return 0.0
    return np.unique(np.concatenate(frames)).size * _PAGE_BYTES / _MB
