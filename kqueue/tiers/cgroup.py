"""A memory cgroup per pool and isolated process, where the host lets the worker make them.

``RLIMIT_AS`` (the fallback, ``kqueue.tiers.child.memory_limit``) limits address space, which a
job can pass without using memory (a big ``mmap``) or stay under while the host swaps. A memory
cgroup limits what the process really holds. ``MemoryCgroups.detect`` picks, in order:

- **cgroup v2, delegated**: the unified hierarchy is mounted, the worker's own cgroup (from
  ``/proc/self/cgroup``) is writable and offers the ``memory`` controller. v2 allows processes
  only in leaves, so the worker moves itself into ``<own>/kqueue-worker``, enables ``+memory`` in
  ``<own>/cgroup.subtree_control`` and puts each child in ``<own>/kqueue-<tier>/proc-<pid>``
  with ``memory.max`` (and ``memory.swap.max = 0``).
- **cgroup v1's memory controller** (``/sys/fs/cgroup/memory``, writable: root): a parent
  ``kqueue/worker-<pid>-<tier>`` at the root of that hierarchy (never under the worker's own
  cgroup, which belongs to whoever started it), each child in ``proc-<pid>`` with
  ``memory.limit_in_bytes``.
- **none**: the children keep ``RLIMIT_AS``.

A pool process's limit is set before each job to what it holds then plus the job's
``max_memory_mb``; an isolated process puts itself in its group, with its job's limit, first thing
after the fork and before its job runs (``CgroupEntry``: no job code runs outside its limit, and
the worker spends no file writes per job on it; the worker only records the group's path,
``expect``). An isolated process that cannot enter its group falls back to ``RLIMIT_AS``. When the
kernel's OOM killer ends a process inside its group (``oom_kill`` in ``memory.events`` /
``memory.oom_control``), the job's status is ``memory``, as a ``MemoryError`` under ``RLIMIT_AS``
is. Groups are removed when their process exits, the parent when the worker stops (and a dead
worker's empty groups by the next worker that starts: ``sweep_stale``). ``docs/guide/memory.md``
says how an operator delegates a v2 cgroup (systemd ``Delegate=yes``)."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kqueue.policy.status import Status

log = logging.getLogger("kqueue.cgroup")

#: Where cgroup file systems are mounted.
CGROUP_ROOT = Path("/sys/fs/cgroup")
_MB = 1024 * 1024


class CgroupMode(enum.StrEnum):
    """Which resident-memory limit the worker's children get."""

    #: A delegated cgroup v2 subtree: ``memory.max`` per process.
    V2 = "v2"
    #: cgroup v1's memory controller: ``memory.limit_in_bytes`` per process.
    V1 = "v1"
    #: No cgroup can be made: ``RLIMIT_AS`` in the child, as before.
    NONE = "none"


class MemoryCgroups:
    """Makes, limits, reads and removes the per-process memory cgroups of one worker.

    Build with ``detect``; ``mode`` says which applies. Every method is safe to call in mode
    ``NONE`` (it does nothing and returns None/False).
    """

    def __init__(self, mode: CgroupMode, parent: Path | None):
        self.mode, self.parent = mode, parent
        self._groups: dict[int, Path] = {}

    @classmethod
    def detect(
        cls, root: Path = CGROUP_ROOT, *, worker_pid: int | None = None, name: str = "jobs"
    ) -> MemoryCgroups:
        """The best mode this process may use (creates its parent group; ``name`` tells the
        parents of one worker's tiers apart)."""
        worker_pid = os.getpid() if worker_pid is None else worker_pid
        for attempt in (_setup_v2, _setup_v1):
            try:
                found = attempt(root, worker_pid, name)
            except OSError as exc:
                log.debug("memory cgroups: %s not usable: %s", attempt.__name__, exc)
                continue
            if found is not None:
                log.info("memory cgroups: %s under %s", found.mode.value, found.parent)
                return found
        return cls(CgroupMode.NONE, None)

    @property
    def active(self) -> bool:
        """True when children get cgroups (so the child sets no ``RLIMIT_AS``)."""
        return self.mode is not CgroupMode.NONE

    def attach(self, pid: int, limit_mb: float | None) -> Path | None:
        """Put process ``pid`` in a group of its own with ``limit_mb`` (None: no limit yet)."""
        if not self.active:
            return None
        group = self._group_of(pid)
        try:
            group.mkdir(exist_ok=True)
            if limit_mb is not None:
                self._write_limit(group, limit_mb)
            (group / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            log.warning("could not put pid %d in memory cgroup %s: %s", pid, group, exc)
            with contextlib.suppress(OSError):
                group.rmdir()
            return None
        self._groups[pid] = group
        return group

    def expect(self, pid: int) -> None:
        """Record the group process ``pid`` makes for itself (``CgroupEntry``), to read its OOM
        kills and remove it after it exits; touches no file."""
        if self.active:
            self._groups[pid] = self._group_of(pid)

    def _group_of(self, pid: int) -> Path:
        """The group process ``pid`` gets (made by ``attach``)."""
        return self.parent / f"proc-{pid}"

    def set_limit(self, pid: int, limit_mb: float) -> bool:
        """Set the limit of ``pid``'s group, MB; False when it has none or the write failed."""
        group = self._groups.get(pid)
        if group is None:
            return False
        try:
            self._write_limit(group, limit_mb)
        except OSError as exc:
            log.warning("could not set memory limit of %s: %s", group, exc)
            return False
        return True

    def usage_mb(self, pid: int) -> float:
        """What ``pid``'s group holds now, MB (NaN without a group)."""
        group = self._groups.get(pid)
        name = "memory.current" if self.mode is CgroupMode.V2 else "memory.usage_in_bytes"
        try:
            return int((group / name).read_text()) / _MB if group else float("nan")
        except (OSError, ValueError):
            return float("nan")

    def oom_killed(self, pid: int) -> bool:
        """True when the kernel's OOM killer killed a process in ``pid``'s group."""
        group = self._groups.get(pid)
        if group is None:
            return False
        name = "memory.events" if self.mode is CgroupMode.V2 else "memory.oom_control"
        try:
            fields = dict(line.split() for line in (group / name).read_text().splitlines())
        except (OSError, ValueError):
            return False
        return int(fields.get("oom_kill", "0")) > 0

    def release(self, pid: int) -> None:
        """Remove ``pid``'s group (its process has exited)."""
        group = self._groups.pop(pid, None)
        if group is not None:
            _rmdir(group)

    def close(self) -> None:
        """Remove every group left and the worker's parent group."""
        for pid in list(self._groups):
            self.release(pid)
        if self.parent is not None:
            _rmdir(self.parent)
            if self.mode is CgroupMode.V1:
                _rmdir(self.parent.parent)  # the shared kqueue/ parent, once no worker uses it

    def _write_limit(self, group: Path, limit_mb: float) -> None:
        limit = str(max(1, int(limit_mb * _MB)))
        if self.mode is CgroupMode.V2:
            (group / "memory.max").write_text(limit)
            with contextlib.suppress(OSError):  # absent without swap accounting
                (group / "memory.swap.max").write_text("0")
        else:  # v1 keeps memsw >= the limit: raise memsw first, lower it after
            memsw = group / "memory.memsw.limit_in_bytes"
            with contextlib.suppress(OSError):  # absent without swap accounting
                memsw.write_text(limit)
            (group / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):
                memsw.write_text(limit)


@dataclass(frozen=True)
class CgroupEntry:
    """What a fresh isolated process does before its job: enter a group of its own.

    Built by the worker before the fork, ``enter`` called in the child (so the group exists and
    has its limit before the job's first line runs).
    """

    cgroups: MemoryCgroups
    limit_mb: float

    def enter(self) -> bool:
        """Put this process in its own group with ``limit_mb``; False when that failed."""
        return self.cgroups.attach(os.getpid(), self.limit_mb) is not None

    def message(self) -> dict:
        """The entry as plain data, for a child forked by a zygote (its request carries it)."""
        return {
            "mode": self.cgroups.mode.value,
            "parent": str(self.cgroups.parent),
            "mb": self.limit_mb,
        }

    @classmethod
    def from_message(cls, message: dict | None) -> CgroupEntry | None:
        """The entry ``message`` describes (None: the child has no group to enter)."""
        if not message:
            return None
        cgroups = MemoryCgroups(CgroupMode(message["mode"]), Path(message["parent"]))
        return cls(cgroups, message["mb"])


def detect_cgroups(config, tier: str) -> MemoryCgroups:
    """The cgroups a tier's runner uses: ``detect``'s choice, or none when
    ``config.memory_cgroups`` is false. ``tier`` names its parent group."""
    if not config.memory_cgroups:
        return MemoryCgroups(CgroupMode.NONE, None)
    return MemoryCgroups.detect(name=tier)


def note_cgroup_death(cgroups: MemoryCgroups, process) -> None:
    """A child exited: if the OOM killer ended it in its group, its kill reason is ``memory``
    (what ``ChildProcess.death_outcome`` reports); then its group is removed."""
    if process.kill_reason is None and cgroups.oom_killed(process.pid):
        process.kill_reason = Status.MEMORY
    cgroups.release(process.pid)


def sweep_stale(kqueue_root: Path) -> int:
    """Remove the empty groups of workers that died without cleaning up (SIGKILL, a crash):
    ``worker-<pid>-<tier>`` whose pid is gone, with their empty ``proc-*`` children. Returns how
    many worker groups it removed."""
    removed = 0
    for group in kqueue_root.glob("worker-*-*"):
        try:
            pid = int(group.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if _alive(pid):
            continue
        for child in group.glob("proc-*"):
            _rmdir(child)
        _rmdir(group)
        removed += not group.exists()
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def own_cgroup_v2(proc_cgroup: str) -> str | None:
    """This process's v2 cgroup path from ``/proc/self/cgroup``'s text (``0::/path``), or None."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def _setup_v2(root: Path, worker_pid: int, name: str) -> MemoryCgroups | None:
    if not (root / "cgroup.controllers").exists():
        return None  # not the unified hierarchy at the root (v1 or hybrid)
    own = own_cgroup_v2(Path("/proc/self/cgroup").read_text())
    if own is None or own == "/":
        return None  # the root cgroup is the host's, not delegated
    base = root / own.lstrip("/")
    if "memory" not in (base / "cgroup.controllers").read_text().split():
        return None
    if not os.access(base / "cgroup.subtree_control", os.W_OK):
        return None
    leaf = base / "kqueue-worker"
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(f"{worker_pid}\n")  # v2: processes live in leaves only
    (base / "cgroup.subtree_control").write_text("+memory")
    parent = base / f"kqueue-{name}"
    parent.mkdir(exist_ok=True)
    (parent / "cgroup.subtree_control").write_text("+memory")
    return MemoryCgroups(CgroupMode.V2, parent)


def _setup_v1(root: Path, worker_pid: int, name: str) -> MemoryCgroups | None:
    memory = root / "memory"
    if (root / "cgroup.controllers").exists() or not (memory / "cgroup.procs").exists():
        return None
    if not os.access(memory, os.W_OK):
        return None
    sweep_stale(memory / "kqueue")
    parent = memory / "kqueue" / f"worker-{worker_pid}-{name}"
    parent.mkdir(parents=True, exist_ok=True)
    return MemoryCgroups(CgroupMode.V1, parent)
