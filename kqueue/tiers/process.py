"""The parent's handle on one forked child: a pipe to it, and the event loop watching it.

A ``ChildProcess`` forks with a bare ``os.fork`` (no ``multiprocessing`` process object: the
child runs its target and leaves with ``os._exit``) and registers two readers on the running
asyncio loop: the pipe (a result arrived) and a pidfd of the child (it exited; a sentinel pipe on
kernels without pidfd). Death is noticed the moment the child is a zombie, without polling, and a
result written just before exit is read first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from kqueue.policy.trace import Status
from kqueue.tiers.base import Outcome
from kqueue.tiers.child import MEMORY_EXIT_CODE, decode
from kqueue.tiers.procs import describe_exit, kill_tree

#: Exits that a memory limit typically causes outside Python's MemoryError (abort in malloc).
_MEMORY_EXITS = {MEMORY_EXIT_CODE, -signal.SIGABRT, -signal.SIGSEGV}


class ChildProcess:
    """One forked child running ``target(conn, *args)``, watched by the running loop.

    Args:
        target: the function the child runs (``child.serve`` or ``child.run_once``).
        args: its arguments after the pipe end (plain data and the app: fork shares them).
        on_result: called with ``(child, result dict)`` for each result the child sends.
        on_exit: called with ``(child)`` once, after the child exited and was reaped.
        name: what the child is, for logs.
    """

    def __init__(
        self,
        target: Callable[..., None],
        args: tuple,
        *,
        on_result: Callable[[ChildProcess, dict], None],
        on_exit: Callable[[ChildProcess], None],
        name: str,
    ):
        self._loop = asyncio.get_running_loop()
        self._on_result, self._on_exit = on_result, on_exit
        self.name = name
        began = time.perf_counter()
        self.pid, self.conn, sentinel = _fork(target, args)
        #: Seconds the fork took in the parent.
        self.spawn_s = time.perf_counter() - began
        self.started_at = time.time()
        #: Why the parent killed it (TIMEOUT, MEMORY, KILLED at shutdown), or None.
        self.kill_reason: Status | None = None
        self.exitcode: int | None = None
        self._exit_fd = _exit_fd(self.pid, sentinel)
        self._loop.add_reader(self.conn.fileno(), self._readable)
        self._loop.add_reader(self._exit_fd, self._exited)

    @property
    def alive(self) -> bool:
        """True until the child has exited."""
        return self.exitcode is None

    def send(self, data: bytes) -> None:
        """Send one message; a child that is gone is noticed by its exit reader."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(data)

    def kill(self, reason: Status) -> None:
        """SIGKILL the child and whatever it started; the first reason given is kept."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.alive:  # a reaped pid may already belong to another process
            kill_tree(self.pid)

    def _readable(self) -> None:
        try:
            data = self.conn.recv_bytes()
        except (EOFError, OSError):
            self._loop.remove_reader(self.conn.fileno())
            return
        self._on_result(self, decode(data))

    def _exited(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while self.conn.poll(0):  # a result written just before exit comes first
                self._on_result(self, decode(self.conn.recv_bytes()))
        self._unwatch()
        self.exitcode = _reap(self.pid)
        self._on_exit(self)

    def _unwatch(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.conn.fileno())
        self._loop.remove_reader(self._exit_fd)
        os.close(self._exit_fd)
        self.conn.close()

    def death_outcome(self, started_at: float, *, memory_mb: float = math.nan) -> Outcome:
        """The outcome of a job whose process exited without reporting a result."""
        how = describe_exit(self.exitcode)
        reason = self.kill_reason
        if reason is None:
            reason = Status.MEMORY if self.exitcode in _MEMORY_EXITS else Status.KILLED
        error = {
            Status.TIMEOUT: f"timed out; process {self.pid} {how}",
            Status.MEMORY: f"went past its memory limit; process {self.pid} {how}",
        }.get(reason, f"process {self.pid} died mid-job ({how})")
        interrupted = self.kill_reason is Status.KILLED  # stopped by the worker at shutdown
        return Outcome(
            reason,
            started_at,
            time.time(),
            memory_mb=memory_mb,
            error=error,
            where=f"pid {self.pid}",
            interrupted=interrupted,
            extra={"exitcode": self.exitcode},
        )


def outcome_from_result(result: dict[str, Any], where: str, **extra: Any) -> Outcome:
    """The outcome a child reported for a job it ran to its end."""
    return Outcome(
        Status(result["status"]),
        result["started_at"],
        result["finished_at"],
        cpu_s=result["cpu_s"],
        memory_mb=result["memory_mb"],
        error=result["error"],
        where=where,
        extra=extra,
    )


def _fork(target: Callable[..., None], args: tuple) -> tuple[int, Connection, int]:
    """Fork a child running ``target(conn, *args)``; returns its pid, our end of the pipe, and
    the read end of a sentinel pipe (end of file once the child is gone).

    The child never returns from here: it leaves with ``os._exit`` (0, or 1 if ``target``
    raised), so nothing of the parent (atexit hooks, the event loop, buffered files) runs twice.
    """
    ours, theirs = socket.socketpair()
    sentinel_r, sentinel_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        ours.close()
        os.close(sentinel_r)
        _child_main(target, (Connection(theirs.detach()), *args))
    theirs.close()
    os.close(sentinel_w)
    return pid, Connection(ours.detach()), sentinel_r


def _child_main(target: Callable[..., None], args: tuple) -> None:
    """Run ``target`` in a fresh child and exit; never returns."""
    code = 1
    try:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.close()  # the parent's stdin is not the job's
        target(*args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report anything, then exit
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_fd(pid: int, sentinel: int) -> int:
    """A descriptor readable once ``pid`` exits: a pidfd, else the sentinel pipe.

    A pidfd is preferred because a job's own forked subprocesses inherit the sentinel and would
    hide the death; the sentinel is closed when the pidfd is used.
    """
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return sentinel
    os.close(sentinel)
    return exit_fd


def _reap(pid: int) -> int:
    """Reap exited child ``pid``; its exit code, or minus the signal that killed it."""
    try:
        _, status = os.waitpid(pid, 0)  # the exit descriptor said it exited: this does not block
    except ChildProcessError:
        return -signal.SIGKILL
    return os.waitstatus_to_exitcode(status)
