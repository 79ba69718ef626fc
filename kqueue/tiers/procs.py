"""Process helpers shared by the pool and isolated tiers: kill a tree, read memory, die with parent.

Everything here is a plain function of a pid (or of the calling process); nothing keeps state.
``psutil`` is imported on first use (a kill, a PSS read where ``/proc`` has no rollup): what a
worker reads per job or per status comes from ``/proc`` directly, and its start does not import
psutil.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import select
import signal
import sys

_MB = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
#: The pool's zygote names itself so (``ps``, ``psutil.Process.name``): not a pool process.
ZYGOTE_NAME = "kqueue-zygote"
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / _MB if hasattr(os, "sysconf") else 4096 / _MB


def kill_tree(pid: int, sig: int = signal.SIGKILL, pidfd: int | None = None) -> None:
    """Send ``sig`` to ``pid`` and every process it started (children first); gone ones are skipped.

    A job may start processes of its own; killing only the top one would orphan them. With
    ``pidfd`` (a pidfd of ``pid``) the top one is signalled through it, and a process that has
    ended is not walked: its pid may already name another process.
    """
    import psutil

    descendants = []
    if pidfd is None or not ended(pidfd):
        with contextlib.suppress(psutil.Error):
            descendants = psutil.Process(pid).children(recursive=True)
    for process in descendants:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)
    if pidfd is not None:
        with contextlib.suppress(OSError):  # ESRCH: reaped already; EBADF: not a pidfd
            signal.pidfd_send_signal(pidfd, sig)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def ended(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has ended (its pidfd is readable)."""
    return bool(select.select([pidfd], [], [], 0)[0])


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid``, MB (NaN if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_MB
    except FileNotFoundError:
        return float("nan")
    except (OSError, ValueError, IndexError):  # no /proc here: ask psutil
        pass
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / _MB
    except psutil.Error:
        return float("nan")


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` (shared pages split between sharers), MB; NaN if unknown.

    PSS is the honest per-process share of a forked family: pages still shared copy-on-write
    with the parent are counted once across all of them.
    """
    import psutil

    try:
        return psutil.Process(pid).memory_full_info().pss / _MB
    except (psutil.Error, AttributeError):
        return float("nan")


def family_pss_mb(pid: int) -> float:
    """Total PSS of ``pid`` and all its descendants, MB (what the whole worker really costs)."""
    import psutil

    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return float("nan")
    return sum(pss_mb(member.pid) for member in members)


def own_memory_mb() -> tuple[float, float]:
    """This process's (virtual size, resident size) now, MB, read from ``/proc/self/statm``."""
    try:
        with open("/proc/self/statm") as handle:
            size, resident = handle.read().split()[:2]
        return int(size) * _PAGE_MB, int(resident) * _PAGE_MB
    except OSError:
        import psutil

        info = psutil.Process().memory_info()
        return info.vms / _MB, info.rss / _MB


def reset_peak_rss() -> None:
    """Reset this process's peak resident memory (Linux ``clear_refs`` 5); no-op elsewhere."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_mb(usage: resource.struct_rusage | None = None) -> float:
    """This process's peak resident memory since start or the last ``reset_peak_rss``, MB.

    ``ru_maxrss`` of ``usage`` (default: ``getrusage`` now): on Linux the same high-water mark
    as ``VmHWM``, which ``reset_peak_rss`` resets, in a forked child that has not exec'd. Not read
    from ``/proc/self/status``: that read after each job made the next job's pure-Python CPU
    about 2.5 % slower (medians of 6 interleaved rounds of 100 x 20 ms jobs), ``statm`` did not.
    """
    usage = usage or resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_maxrss * (1 / _MB if sys.platform == "darwin" else 1 / 1024)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit if it already did.

    Called first thing in every child, so no child outlives a worker killed with SIGKILL.
    """
    prctl = libc_prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died between fork and prctl
        os._exit(1)


@functools.cache
def libc_prctl():
    """libc's ``prctl`` (Linux), or ``None``; resolved once, in the worker before it forks.

    The tiers call this at start, so each forked child inherits the resolved function instead
    of loading libc again through ctypes (about 0.3 ms per isolated job).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def exit_fd(process) -> tuple[int, bool]:
    """A descriptor readable once ``process`` (a multiprocess process) exits, and whether the
    caller must close it: a pidfd where the kernel has them, else multiprocess's sentinel."""
    with contextlib.suppress(AttributeError, OSError):
        return os.pidfd_open(process.pid), True
    return process.sentinel, False


def set_name(name: str) -> None:
    """Set this process's name as ``ps`` shows it (Linux ``PR_SET_NAME``, 15 bytes); no-op
    elsewhere."""
    prctl = libc_prctl()
    if prctl is not None:
        prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def own_name() -> str:
    """This process's name as ``ps`` shows it ("" where there is no ``/proc``)."""
    try:
        with open("/proc/self/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def workers_children(pid: int) -> list:
    """The live descendants of ``pid`` that run jobs (psutil processes): every one but the
    pool's zygote and zombies."""
    import psutil

    try:
        found = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    kept = []
    for process in found:
        with contextlib.suppress(psutil.Error):
            if process.status() != psutil.STATUS_ZOMBIE and process.name() != ZYGOTE_NAME:
                kept.append(process)
    return kept


def describe_exit(exitcode: int | None) -> str:
    """A readable exit status: ``exit code 3`` or ``killed by SIGKILL``."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
