"""The host profile: the measured constants that make a real worker differ from a textbook queue.

``kqueue calibrate`` measures them on a host and writes the file; the simulator reads it. One
record and one file format, here in the pure policy, so neither side owns it.

A ``HostProfile`` says how many CPU cores the jobs share, what each tier costs to hand a job to,
how long a process takes to start, and how much memory each kind of process holds before it runs
anything. Every constant may be zero: ``HostProfile.ideal()`` sets them all to zero (and makes the
backend wake the worker at once instead of being polled), which turns the model into a textbook
queue; that is how the simulator is checked against queueing theory.

A host file is TOML with the field names below as top-level keys::

    cores = 4
    spawn_s = 0.05
    pool_dispatch_s = 0.002
    pool_process_mb = 60
    zygote_mb = 8
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kqueue.errors import ConfigError
from kqueue.policy.config import read_toml


@dataclass(frozen=True)
class HostProfile:
    """Constants of the machine and of the runtime's process handling (all >= 0)."""

    #: CPU cores shared by all running jobs' CPU work; 0 means unlimited (no processor sharing).
    cores: int = 4
    #: The fraction of those cores the worker's processes get together on a shared host (the
    #: scheduler shares the CPU between sessions, not threads); 1 on a host of its own.
    cpu_share: float = 1.0
    #: One round trip to the backend to lease a batch of jobs.
    fetch_s: float = 0.002
    #: The worker polls an empty backend every ``Config.poll_interval_s``; False means the
    #: backend wakes the worker the moment a job arrives (a blocking pop; what ``ideal`` uses).
    polls: bool = True
    #: Handing one job to the inline tier (thread-pool or event-loop hand-off).
    inline_dispatch_s: float = 0.0002
    #: What an inline job waits to start for each inline job computing when it is handed over:
    #: the worker's loop and then the job's thread each wait for the GIL, which a computing
    #: thread gives up only every switch interval. ``kqueue run`` sets that interval to 1 ms
    #: (``kqueue.worker.gil``); ``kqueue calibrate`` measured 1.8-2.3 ms here with it, 6.5-7.2 ms
    #: at CPython's default 5 ms.
    gil_handoff_s: float = 0.002
    #: On an oversubscribed host, the CPU the worker's GIL-bound threads win beyond one
    #: thread's share: with ``n`` inline jobs computing, the worker weighs ``1 + bonus * (1 -
    #: 1/n)`` runnable threads against each process (its threads sleep on the GIL, and Linux's
    #: scheduler favours a thread that slept); it still gets at most one core. Measured with
    #: 4 single-thread processes on one core: 1.58-1.65 for 2 threads, 1.86 for 3, 1.95 for 4,
    #: 2.22 for 8 (docs/DECISIONS.md, session 12). 0: exact processor sharing.
    gil_threads_bonus: float = 1.3
    #: Handing one job to a pool process and getting its result back (pickling, pipes).
    pool_dispatch_s: float = 0.002
    #: Handing one job to a freshly started isolated process, on top of ``spawn_s``.
    isolated_dispatch_s: float = 0.002
    #: Starting a process (fork/spawn plus imports): each isolated job, each new pool process.
    spawn_s: float = 0.05
    #: Resident memory of the worker process itself, before any inline job.
    worker_mb: float = 80.0
    #: Resident memory (PSS) of an idle pool process that has run a few jobs but holds none of
    #: their memory: its share of the worker plus the pages it has written since the fork.
    pool_process_mb: float = 60.0
    #: What the pool's zygote (``kqueue.tiers.zygote``, the process that forks every pool
    #: process) adds to the worker's tree, MB: it stands from the worker's start while the worker
    #: has a pool tier (``kqueue.policy.fork.runs_zygote``), whether or not a job ever ran. The
    #: default is what ``kqueue calibrate`` measured on the 2-core development box (7 MB with
    #: SQLite, 10 MB with Redis: its share of the backend client's pages).
    zygote_mb: float = 8.0
    #: Resident memory of an isolated process before its job allocates anything.
    isolated_process_mb: float = 60.0
    #: A job whose memory is at most this many MB leaves it with its process after it ends (the
    #: allocator keeps freed blocks below its mmap threshold, glibc: up to 32 MB); a bigger
    #: job's memory goes back to the OS. A pool process keeps the high-water mark of what its
    #: jobs left, the worker that of its inline jobs together. ``inf``: everything is kept.
    retained_job_mb: float = math.inf
    #: True when the runtime's processes give what their jobs freed back to the OS once idle
    #: (``kqueue.policy.trim``: glibc's ``malloc_trim``); False: they keep it until they exit.
    gives_back_memory: bool = False
    #: CPU seconds a process spends per MB of memory it makes resident for the first time and
    #: gives back (zero-filled page faults, then the unmapping). A job that faults in more fresh
    #: memory than its CPU time covers runs at least this long on a core; 0: not counted.
    fault_cpu_s_per_mb: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ConfigError(
                        f"host: {field.name} = {value!r} is invalid; expected true/false"
                    )
                continue
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            if field.name == "cores":
                ok = ok and float(value).is_integer()
            if not ok:
                raise ConfigError(
                    f"host: {field.name} = {value!r} is invalid; expected a number >= 0"
                )

    @classmethod
    def ideal(cls) -> HostProfile:
        """Every constant zero: unlimited cores, free dispatch and spawn, no memory, no polling."""
        kept = ("polls", "cpu_share", "gives_back_memory")
        zeros = {f.name: 0 for f in dataclasses.fields(cls) if f.name not in kept}
        return cls(**zeros, polls=False)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> HostProfile:
        """Build a profile from a host TOML file (optional) and overrides (``None`` = unset).

        Args:
            path: a TOML file whose top-level keys are ``HostProfile`` field names.
            **overrides: field values that beat the file, e.g. ``cores=8`` from ``--cores``.

        Raises:
            ConfigError: unreadable file, unknown key (naming the file, the key and the valid
                keys) or a bad value.
        """
        values: dict[str, Any] = {}
        if path is not None:
            values.update(read_toml(Path(path), kind="host"))
        values.update({k: v for k, v in overrides.items() if v is not None})
        source = str(path) if path is not None else "host overrides"
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise ConfigError(
                    f"{source}: unknown key {key!r}; valid keys are: {', '.join(valid)}"
                )
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("host:", f"{source}:", 1)) from None

    def to_dict(self) -> dict[str, Any]:
        """The profile as a plain dict (for reports)."""
        return dataclasses.asdict(self)

    def to_toml(self, comment: str | None = None) -> str:
        """The profile as a host TOML file that ``load`` reads back (numbers to 6 digits).

        Args:
            comment: a first line to write as a TOML comment, e.g. where and when it was measured.
        """
        lines = [f"# {comment}"] if comment else []
        for key, value in self.to_dict().items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, int):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f"{key} = {value:.6g}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path, comment: str | None = None) -> None:
        """Write ``to_toml(comment)`` to ``path`` (replacing the file)."""
        Path(path).write_text(self.to_toml(comment))
