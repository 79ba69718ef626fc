"""A process's memory by kind of mapping, from ``/proc/PID/smaps``: where a process's growth is.

For the soak (``experiments/soak.py --smaps-out``), which asks of a pool process whose private
memory creeps whether the creep is copy-on-write coming undone (pages it shared with the worker
that forked it become its own: its ``Shared_*`` fall as its ``Private_Dirty`` rises, in mappings
it inherited) or new memory (new mappings, or the heap's ``Rss`` rising). Each mapping is one
kind: ``heap`` (``[heap]``, glibc's main arena), ``stack``, ``anon`` (an unnamed mapping: glibc's
mmapped blocks and other arenas, Python's obmalloc arenas, thread stacks), ``file`` (a mapped
file: code, shared libraries) or ``other`` (``[vdso]`` and the like). With ``inherited_from``
(the parent's pid) an ``anon`` mapping at an address the parent maps too is ``anon-inherited``
(it was there at the fork, or the same range was reused), one it does not is ``anon-new``.

A process that is gone reads as no rows: a child may exit mid-read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: The ``smaps`` fields summed per kind, all in kB.
FIELDS_KB = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")


@dataclass
class KindTotals:
    """The sums of one kind's mappings, kB, and how many mappings there are."""

    mappings: int = 0
    rss_kb: int = 0
    pss_kb: int = 0
    shared_clean_kb: int = 0
    shared_dirty_kb: int = 0
    private_clean_kb: int = 0
    private_dirty_kb: int = 0


_ATTRIBUTE = {name: f"{name.lower()}_kb" for name in FIELDS_KB}
#: The columns of a breakdown row, after the kind (for a CSV header).
COLUMNS = tuple(f.name for f in fields(KindTotals))


def _kind(name: str) -> str:
    """The kind of a mapping from its name (the sixth field of its header line)."""
    if name == "[heap]":
        return "heap"
    if name.startswith("[stack"):
        return "stack"
    if not name:
        return "anon"
    return "file" if name.startswith("/") else "other"


def _ranges(pid: int) -> set[tuple[int, int]]:
    """The (start, end) of every mapping of ``pid`` (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/maps") as handle:
            return {_span(line.split(maxsplit=1)[0]) for line in handle}
    except OSError:
        return set()


def _span(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return int(start, 16), int(end, 16)


def breakdown(pid: int, inherited_from: int | None = None) -> dict[str, KindTotals]:
    """``pid``'s mappings summed by kind (see the module docstring); ``{}`` when it is gone.

    Args:
        pid: the process to read.
        inherited_from: its parent's pid, to split ``anon`` into ``anon-inherited`` (a range the
            parent maps too) and ``anon-new``; None keeps one ``anon`` kind.
    """
    parent = _ranges(inherited_from) if inherited_from is not None else None
    totals: dict[str, KindTotals] = {}
    current: KindTotals | None = None
    try:
        with open(f"/proc/{pid}/smaps") as handle:
            for line in handle:
                head, _, rest = line.partition(" ")
                if not head.endswith(":"):  # a mapping's header line
                    parts = line.split(maxsplit=5)
                    kind = _kind(parts[5].strip() if len(parts) > 5 else "")
                    if kind == "anon" and parent is not None:
                        kind = "anon-inherited" if _span(parts[0]) in parent else "anon-new"
                    current = totals.setdefault(kind, KindTotals())
                    current.mappings += 1
                elif current is not None and head[:-1] in _ATTRIBUTE:
                    name = _ATTRIBUTE[head[:-1]]
                    setattr(current, name, getattr(current, name) + int(rest.split()[0]))
    except (OSError, ValueError):
        return {}
    return totals
