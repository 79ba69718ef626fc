"""The pool's zygote: one process forked from the worker at start that forks every pool process.

A pool process forked straight from the worker inherits the worker as it is at that moment. The
first pool, forked at start, gets a worker that has only imported the app (mostly frozen objects
it seldom writes) and the app's descriptors of that moment. A replacement, forked after
``max_jobs_per_worker`` jobs, got the worker's warm, rewritten heap (3-6 MB more private memory
per process, soon copied) and whatever the app had opened since (the soak's attempts log: one
descriptor more). The zygote is forked in ``PoolTier.start``, before the first pool process and
before the worker has any thread; it then does nothing but fork, so every generation of pool
processes comes from the same image.

Protocol over a ``SOCK_SEQPACKET`` Unix socket pair, one fixed-size message each way:

- worker -> zygote: ``S`` (fork one pool process);
- zygote -> worker: ``R`` once, when it has named itself and serves; ``P pid`` with the
  parent end of the new process's pipe and a pidfd of it as ``SCM_RIGHTS`` descriptors
  (``socket.send_fds``), the zygote closing its copies; ``F 0 errno`` when a fork failed (the
  zygote serves on); ``X pid exitcode`` once the zygote reaped a pool process (watched by a
  pidfd, as the worker watches its children).

The pool processes are the worker's grandchildren. The worker watches and kills each through
the pidfd the zygote opened right after the fork, before it could reap the process: a pidfd
names that process, not its pid, so a pid the kernel gave to another process once the zygote
reaped this one is never signalled (``pidfd_open`` in the worker, later, had that window). It
learns the exit code from the ``X`` message (``exit_code``), the status the zygote read with
``waitpid`` once the pidfd said the process ended; the kill reason it sets itself, as before.
``PR_SET_PDEATHSIG`` chains: the zygote dies with the worker, a pool process with the zygote.
A zygote that is gone (killed, or never started) makes ``spawn`` raise ``ZygoteGone``; the
pool then forks from the worker.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import socket
import struct
import time
from typing import Any

import multiprocess
from multiprocess.connection import Connection

from kqueue.tiers import inherit
from kqueue.tiers.procs import ZYGOTE_NAME, exit_fd, own_name, set_name

_FORK = multiprocess.get_context("fork")
#: One message: its kind (``S``, ``P``, ``X``), a pid and an exit code.
_MESSAGE = struct.Struct("=cii")
_SPAWN, _SPAWNED, _EXITED, _READY, _FAILED = b"S", b"P", b"X", b"R", b"F"
#: How long the worker waits for the zygote to answer a fork request, seconds.
SPAWN_TIMEOUT_S = 10.0


class ZygoteGone(RuntimeError):
    """The zygote did not answer: it is gone, or stuck."""


class Zygote:
    """The worker's handle on its zygote; ``spawn`` forks a process running ``target``.

    Args:
        app: the app (the zygote and its children find jobs in it).
        target: what each forked process runs, ``target(conn, app, zygote_pid)``
            (``child.serve``).
        wait_ready: wait here until it serves (``wait_ready``); False: requests wait in its
            socket until it does (the isolated tier, so a worker's start does not wait).
    """

    def __init__(self, app: Any, target: Any, *, wait_ready: bool = True):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker_pid = os.getpid()
        # a bare fork, not a multiprocess process: no sentinel pipes nor stdin of its own for
        # its children to inherit, so they hold what a pool process forked by the worker held
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the zygote; its children are what the tests see
            code = 1
            try:
                _after_fork()
                inherit.release_in_child(ours)
                _zygote_main(theirs, app, target, worker_pid)
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        self.pid: int = pid
        self._sock = ours
        self._exits: dict[int, int] = {}
        self._spawned: list[tuple[int, int]] = []
        #: errnos of forks the zygote could not make, in order
        self._failures: list[int] = []
        # children forked later from the worker (isolated, fallbacks) close the worker's end
        inherit.hold(self.pid, ours, ())
        self._ready = False
        if wait_ready:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the zygote has named itself and serves: ``ps`` and the test helpers
        then tell it from a pool process. Raises ``ZygoteGone`` (and closes it) past
        ``SPAWN_TIMEOUT_S``."""
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        while not self._ready and self._receive(deadline - time.monotonic()):
            pass
        if not self._ready:
            self.close()
            raise ZygoteGone(f"zygote {self.pid} did not start within {SPAWN_TIMEOUT_S} s")

    def spawn(self) -> tuple[int, Connection, int | None]:
        """Fork one process from the zygote: its pid, the worker's end of its pipe, and a pidfd
        of it for the caller to close (None where the kernel has no pidfds).

        Raises:
            ZygoteGone: the zygote did not answer within ``SPAWN_TIMEOUT_S``.
            OSError: the zygote could not fork (its errno: EAGAIN, ENOMEM, EMFILE).
        """
        try:
            self._sock.send(_MESSAGE.pack(_SPAWN, 0, 0))
        except OSError as exc:
            raise ZygoteGone(f"zygote {self.pid}: {exc}") from exc
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        while not self._spawned:
            if self._failures:
                code = self._failures.pop(0)
                raise OSError(code, f"zygote {self.pid} could not fork: {os.strerror(code)}")
            if not self._receive(deadline - time.monotonic()):
                raise ZygoteGone(f"zygote {self.pid} did not fork within {SPAWN_TIMEOUT_S} s")
        pid, fd, pidfd = self._spawned.pop(0)
        return pid, Connection(fd), pidfd

    def request(self) -> None:
        """Ask for one process without waiting: it comes from ``take_spawned`` once ``pump``
        read the answer (the caller watches ``fileno``)."""
        try:
            self._sock.send(_MESSAGE.pack(_SPAWN, 0, 0))
        except OSError as exc:
            raise ZygoteGone(f"zygote {self.pid}: {exc}") from exc

    def fileno(self) -> int:
        """The worker's end of the socket: readable when the zygote sent something."""
        return self._sock.fileno()

    def pump(self) -> bool:
        """Read every message waiting, without blocking; False once the zygote is gone."""
        while self._sock.fileno() >= 0 and select.select([self._sock], [], [], 0)[0]:
            if not self._receive(0):
                return False
        return self._sock.fileno() >= 0

    def take_spawned(self) -> tuple[list[tuple[int, Connection, int | None]], list[int]]:
        """The processes forked so far and not yet taken (pid, pipe, pidfd or None), and the
        errnos of the forks that failed, each in the order the zygote answered."""
        spawned, self._spawned = self._spawned, []
        failures, self._failures = self._failures, []
        return [(pid, Connection(fd), pidfd) for pid, fd, pidfd in spawned], failures

    def exit_code(self, pid: int, timeout_s: float = SPAWN_TIMEOUT_S) -> int | None:
        """The exit code of process ``pid`` (negative: the signal), as multiprocess gives it;
        None if the zygote did not report it within ``timeout_s`` or is gone. The zygote
        reports it as soon as its own pidfd of the process fires, so the wait is a round trip
        unless the zygote is starved of CPU (then it is long, not wrong)."""
        deadline = time.monotonic() + timeout_s
        while pid not in self._exits and self._receive(deadline - time.monotonic()):
            pass
        return self._exits.pop(pid, None)

    def _receive(self, timeout_s: float) -> bool:
        """Read one message within ``timeout_s``; False if none came (or the zygote is gone)."""
        if self._sock.fileno() < 0:
            return False
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout_s))
        if not ready:
            return False
        try:
            data, fds, _, _ = socket.recv_fds(self._sock, _MESSAGE.size, 2)
        except OSError:
            return False
        if len(data) != _MESSAGE.size:  # end of file: the zygote exited
            return False
        kind, pid, code = _MESSAGE.unpack(data)
        if kind == _SPAWNED and fds:
            self._spawned.append((pid, fds[0], fds[1] if len(fds) > 1 else None))
        elif kind == _EXITED:
            self._exits[pid] = code
        elif kind == _READY:
            self._ready = True
        elif kind == _FAILED:
            self._failures.append(code)
        return True

    def close(self, timeout_s: float = 2.0) -> None:
        """End the zygote (it exits at end of file on its socket) and reap it."""
        self._sock.close()
        inherit.forget(self.pid)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already
                return
            if done:
                return
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                deadline = math.inf
            time.sleep(0.01)


def _after_fork() -> None:
    """In the fresh zygote: forget the worker's multiprocess children and finalizers, as
    multiprocess does in a process it starts."""
    from multiprocess import process, util

    process._children = set()
    util._finalizer_registry.clear()
    util._run_after_forkers()


def _zygote_main(sock: socket.socket, app: Any, target: Any, worker_pid: int) -> None:
    """The zygote: fork a process per request, report each one's exit, until the worker goes."""
    from kqueue.tiers.child import prepare

    prepare(app, worker_pid)  # dies with the worker, ignores SIGINT/SIGTERM, lets go of sockets
    worker_name = own_name()
    set_name(ZYGOTE_NAME)
    sock.send(_MESSAGE.pack(_READY, os.getpid(), 0))
    # multiprocess forbids a daemonic process children (a worker run as one, in a test)
    multiprocess.current_process()._config["daemon"] = False
    children: dict[int, tuple[Any, int, bool]] = {}  # exit fd -> (process, pid, own fd)
    while True:
        ready, _, _ = select.select([sock, *children], [], [])
        for fd in ready:
            if fd is sock:
                if not _answer(sock, app, target, children, worker_name):
                    return  # the worker closed its end: its children die with us
            else:
                _reap(sock, children.pop(fd), fd)


def _answer(sock: socket.socket, app: Any, target: Any, children: dict, name: str) -> bool:
    """Serve one request from the worker; False at end of file."""
    try:
        data = sock.recv(_MESSAGE.size)
    except OSError:
        return False
    if len(data) != _MESSAGE.size:
        return False
    try:
        parent_end, child_end = _FORK.Pipe(duplex=True)
    except OSError as exc:  # out of descriptors: this fork fails, the zygote serves on
        return _failed(sock, exc)
    process = _FORK.Process(
        target=inherit.child_main,
        args=(parent_end, _grandchild_main, child_end, sock, app, target, os.getpid(), name),
        name="kqueue-pool",
    )
    process.daemon = True
    try:
        process.start()
    except OSError as exc:  # EAGAIN (pids.max, RLIMIT_NPROC), ENOMEM: as a fork in the worker
        parent_end.close()
        child_end.close()
        return _failed(sock, exc)
    child_end.close()
    fd, own = exit_fd(process)
    children[fd] = (process, process.pid, own)
    # the children forked after this one close what the zygote holds on it (kqueue.tiers.inherit)
    inherit.hold(process.pid, None, ((fd,) if own else ()) + inherit.popen_fds(process))
    # the worker's pidfd, opened before this loop can reap the process: it names this process
    pidfd = os.dup(fd) if own else None
    fds = [parent_end.fileno()] + ([pidfd] if pidfd is not None else [])
    with contextlib.suppress(OSError):
        socket.send_fds(sock, [_MESSAGE.pack(_SPAWNED, process.pid, 0)], fds)
    parent_end.close()
    if pidfd is not None:
        os.close(pidfd)
    return True


def _failed(sock: socket.socket, exc: OSError) -> bool:
    """Tell the worker a fork failed (its errno), so that spawn fails and the pool keeps the
    zygote and its running processes."""
    with contextlib.suppress(OSError):
        sock.send(_MESSAGE.pack(_FAILED, 0, exc.errno or 0))
    return True


def _reap(sock: socket.socket, child: tuple[Any, int, bool], fd: int) -> None:
    """A pool process exited: reap it and tell the worker its exit code."""
    process, pid, own = child
    # its pidfd (or sentinel) fired: it has ended, so waitpid returns at once with its status
    # (a timed join waits on the sentinel, which a process the job started may still hold)
    process.join()
    code = process.exitcode
    if own:
        os.close(fd)
    inherit.forget(pid)
    with contextlib.suppress(ValueError):
        process.close()
    with contextlib.suppress(OSError):
        sock.send(_MESSAGE.pack(_EXITED, pid, code if code is not None else -signal.SIGKILL))


def _grandchild_main(
    conn: Any, sock: socket.socket, app: Any, target: Any, zygote_pid: int, name: str
) -> None:
    """A pool process forked by the zygote: the worker's name back, no zygote socket; then
    ``target``."""
    sock.close()
    set_name(name)
    target(conn, app, zygote_pid)
