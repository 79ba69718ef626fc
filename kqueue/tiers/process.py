"""The parent's handle on one forked child: a pipe to it, and the event loop watching it.

A ``ChildProcess`` forks (``multiprocess``'s fork context; the child first lets go of the
worker's handles on its other children, ``kqueue.tiers.inherit``) and registers two readers on the
running asyncio loop: the pipe (a result arrived) and a pidfd of the child (it exited; the
multiprocess sentinel on kernels without pidfd). Death is noticed the moment the kernel reaps
nothing more than a zombie, without polling, and a result written just before exit is read first.
The pipe's reader can be paused (``pause_reading``): results then wait in the pipe, without
waking the parent, until ``drain`` reads them all, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import multiprocess

from kqueue.policy.retry import Failure
from kqueue.policy.status import Status
from kqueue.tiers import inherit
from kqueue.tiers.base import Outcome
from kqueue.tiers.child import MEMORY_EXIT_CODE, decode
from kqueue.tiers.procs import describe_exit, ended, exit_fd, kill_tree

if TYPE_CHECKING:
    from kqueue.tiers.zygote import Zygote

_FORK = multiprocess.get_context("fork")
#: Exits that a memory limit typically causes outside Python's MemoryError (abort in malloc).
_MEMORY_EXITS = {MEMORY_EXIT_CODE, -signal.SIGABRT, -signal.SIGSEGV}


class ChildProcess:
    """One forked child running ``target(conn, *args)``, watched by the running loop.

    Args:
        target: the function the child runs (``child.serve`` or ``child.run_once``).
        args: its arguments after the pipe end (plain data and the app: fork shares them).
        on_result: called with ``(child, result dict)`` for each result the child sends.
        on_exit: called with ``(child)`` once, after the child exited and was reaped.
        name: the process name, for ``ps`` and logs.
        zygote: fork it from this zygote rather than from this process (``target`` and
            ``args`` are then the zygote's: ``child.serve`` with the app); raises
            ``ZygoteGone`` if the zygote does not answer.
        spawned: with ``zygote``, the (pid, pipe, pidfd) it already forked
            (``Zygote.take_spawned``): nothing is forked here.
    """

    def __init__(
        self,
        target: Callable[..., None],
        args: tuple,
        *,
        on_result: Callable[[ChildProcess, dict], None],
        on_exit: Callable[[ChildProcess], None],
        name: str,
        zygote: Zygote | None = None,
        spawned: tuple[int, Any, int | None] | None = None,
    ):
        self._loop = asyncio.get_running_loop()
        self._on_result, self._on_exit = on_result, on_exit
        #: The zygote that forked it (``kqueue.tiers.zygote``), or None: forked by this process.
        self.zygote = zygote
        began = time.perf_counter()
        pidfd = None
        if zygote is not None:
            self.process = None
            self.pid, self.conn, pidfd = spawned if spawned is not None else zygote.spawn()
        else:
            self.process, self.conn = _fork(target, args, name)
            self.pid = self.process.pid
        #: Seconds the fork took in the parent (with a zygote: the request's round trip).
        self.spawn_s = time.perf_counter() - began
        self.started_at = time.time()
        #: Why the parent killed it (TIMEOUT, MEMORY, KILLED at shutdown), or None.
        self.kill_reason: Status | None = None
        self.exitcode: int | None = None
        if self.process is not None:
            self._exit_fd, self._own_exit_fd = exit_fd(self.process)
            popen = inherit.popen_fds(self.process)
        else:
            self._exit_fd, self._own_exit_fd = pidfd or _pidfd_or_ended(self.pid), True
            popen = ()
        #: A pidfd of the child while it is watched (kills go through it), else None.
        self._pidfd = pidfd if pidfd is not None else (self._exit_fd if self._own_exit_fd else None)
        own_fds = (self._exit_fd,) if self._own_exit_fd else ()
        inherit.hold(self.pid, self.conn, (*own_fds, *popen))
        #: True while the loop reads each result as it arrives (see ``pause_reading``).
        self.reading = True
        #: How many times its pipe was read and had results (one wake-up each).
        self.reads = 0
        self._loop.add_reader(self.conn.fileno(), self.drain)
        self._loop.add_reader(self._exit_fd, self._exited)

    @property
    def alive(self) -> bool:
        """True until the child has exited."""
        return self.exitcode is None

    def pid_is_its_own(self) -> bool:
        """True while ``pid`` surely names this child: it has not ended (its pidfd says so),
        so nobody could reap it and the kernel could not give its pid to another process."""
        if not self.alive:
            return False
        return self._pidfd is None or not ended(self._pidfd)

    def send(self, data: bytes) -> None:
        """Send one message; a child that is gone is noticed by its exit reader."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(data)

    def kill(self, reason: Status) -> None:
        """SIGKILL the child and whatever it started; the first reason given is kept."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.alive:  # once reaped, its pid may be another process's
            kill_tree(self.pid, pidfd=self._pidfd)

    def pause_reading(self) -> None:
        """Stop waking the loop per result: results wait in the pipe until ``drain`` reads them."""
        if self.reading and self.alive:
            self._loop.remove_reader(self.conn.fileno())
            self.reading = False

    def resume_reading(self) -> None:
        """Read each result as it arrives again (one waiting already is read on the next turn)."""
        if not self.reading and self.alive:
            self._loop.add_reader(self.conn.fileno(), self.drain)
            self.reading = True

    def drain(self) -> None:
        """Hand every result waiting in the pipe to ``on_result``, in the order they were sent."""
        try:
            if self.alive and self.conn.poll(0):
                self.reads += 1
            while self.alive and self.conn.poll(0):
                self._on_result(self, decode(self.conn.recv_bytes()))
        except (EOFError, OSError):  # the child closed its end: its exit reader ends it
            self.pause_reading()

    def _exited(self) -> None:
        self.drain()  # a result written just before exit comes first
        self._unwatch()
        code = self._reaped_code()
        self.exitcode = code if code is not None else -signal.SIGKILL
        self._on_exit(self)

    def _reaped_code(self) -> int | None:
        """The exit code, once reaped: by us (waitpid) or by the zygote (its report)."""
        if self.process is None:
            return self.zygote.exit_code(self.pid)
        code = self.process.exitcode  # waitpid(WNOHANG): the pidfd said it exited
        if code is None:
            self.process.join(0.5)
            code = self.process.exitcode
        with contextlib.suppress(ValueError):
            self.process.close()
        return code

    def _unwatch(self) -> None:
        self.pause_reading()
        self._loop.remove_reader(self._exit_fd)
        if self._own_exit_fd:
            os.close(self._exit_fd)
        self._pidfd = None  # closed: its number may name another file now
        self.conn.close()
        inherit.forget(self.pid)

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
        if reason is Status.CANCELLED:
            error = f"cancelled while it ran; process {self.pid} {how}"
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
        result=result.get("result"),
        failure=Failure(result.get("retryable", True), result.get("retry_delay_s")),
    )


def _pidfd_or_ended(pid: int) -> int:
    """A pidfd of ``pid`` (a zygote's child), or, if it is already reaped, a descriptor that is
    readable at once (a pipe whose write end is closed), so its exit is handled all the same."""
    with contextlib.suppress(ProcessLookupError):
        return os.pidfd_open(pid)
    read_end, write_end = os.pipe()
    os.close(write_end)
    return read_end


def _fork(target: Callable[..., None], args: tuple, name: str) -> tuple[Any, Any]:
    """Fork a child of this process running ``target(conn, *args)``: (process, our pipe end)."""
    parent_end, child_end = _FORK.Pipe(duplex=True)
    process = _FORK.Process(
        target=inherit.child_main, args=(parent_end, target, child_end, *args), name=name
    )
    process.daemon = True
    process.start()
    child_end.close()
    return process, parent_end


def interrupt_backlog(backlog, end: Callable[[Any, Outcome], None] | None = None) -> None:
    """End every queued job that never reached a process as ``interrupted`` (back to the queue).

    Args:
        backlog: a deque of queued jobs.
        end: called with ``(job, outcome)`` for each; by default the outcome goes to the
            job's ``future`` unless that is done already.
    """
    while backlog:
        job = backlog.popleft()
        outcome = Outcome.interrupted_now()
        if end is not None:
            end(job, outcome)
        elif not job.future.done():
            job.future.set_result(outcome)
