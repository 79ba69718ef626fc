"""Jobs: the ``App`` that registers them, the ``Job`` handle, and the encoding of messages.

A message on the broker is JSON: ``{"v": 1, "name": ..., "args": [...], "kwargs": {...},
"submitted_at": ...}``. A worker looks ``name`` up in its app's registry; it never imports or
unpickles anything a message names.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kqueue.backends import open_backend
from kqueue.backends.base import Backend
from kqueue.errors import JobError, KQueueError, PayloadError
from kqueue.policy.config import JobOptions, Tier, validate_job_options

MESSAGE_VERSION = 1
DEFAULT_QUEUE = "default"
#: Deepest nesting of lists and dicts in one argument. Both sides refuse deeper data: a pool or
#: isolated process decodes the arguments again, deeper in its stack than the worker did, and near
#: Python's recursion limit the worker's decode succeeds where the child's fails (and kills it).
MAX_NESTING = 100


@dataclass(frozen=True)
class Message:
    """A decoded job message."""

    name: str
    args: list
    kwargs: dict
    submitted_at: float


def encode_message(name: str, args: tuple, kwargs: dict, submitted_at: float) -> bytes:
    """Encode a job call as JSON bytes.

    Raises:
        JobError: an argument is not JSON-serialisable (names the argument and its type).
    """
    for where, value in [
        *((f"argument {i + 1}", a) for i, a in enumerate(args)),
        *((f"keyword argument {k!r}", v) for k, v in kwargs.items()),
    ]:
        problem = _json_problem(value)
        if problem is not None:
            raise JobError(
                f"job {name!r}: {where} ({type(value).__name__}) is not JSON-serialisable: "
                f"{problem}; pass plain data (str, int, float, bool, None, list, dict with str "
                "keys) and load objects inside the job"
            )
    document = {
        "v": MESSAGE_VERSION,
        "name": name,
        "args": list(args),
        "kwargs": kwargs,
        "submitted_at": submitted_at,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _json_problem(value: Any) -> str | None:
    """Why ``value`` would not come back from JSON as it went in, or None."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return str(exc)
    if _nests_deeper(value, MAX_NESTING):
        return f"lists and dicts nested deeper than {MAX_NESTING} levels"
    stack = [value]
    while stack:  # JSON would silently turn a key 1 into "1"
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return f"dict key {key!r} is not a string"
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _nests_deeper(value: Any, limit: int) -> bool:
    """True when ``value`` holds lists or dicts nested more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            if level > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return False


def decode_message(body: bytes) -> Message:
    """Decode a message read from the broker: only what ``encode_message`` writes is accepted.

    Raises:
        PayloadError: the body is not a JSON job message (says what is wrong with it).
    """
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except PayloadError:
        raise
    except ValueError as exc:  # not UTF-8/16/32, not JSON, or an integer past 4300 digits
        raise PayloadError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("payload is nested too deeply to decode") from None
    if not isinstance(document, dict):
        raise PayloadError(f"payload is a JSON {type(document).__name__}, expected an object")
    version = document.get("v")
    if type(version) is not int or version != MESSAGE_VERSION:
        raise PayloadError(f"payload version {version!r} is not {MESSAGE_VERSION}")
    name, args = document.get("name"), document.get("args", [])
    kwargs, submitted_at = document.get("kwargs", {}), document.get("submitted_at")
    problems = [
        (not isinstance(name, str) or not name, "'name' must be a non-empty string"),
        (not isinstance(args, list), "'args' must be a list"),
        (not isinstance(kwargs, dict), "'kwargs' must be an object"),
        (not _is_time(submitted_at), "'submitted_at' must be a finite number"),
    ]
    for bad, problem in problems:
        if bad:
            raise PayloadError(f"payload field {problem}")
    if _nests_deeper(args, MAX_NESTING + 1) or _nests_deeper(kwargs, MAX_NESTING + 1):
        raise PayloadError(f"payload arguments nest deeper than {MAX_NESTING} levels")
    return Message(name, args, kwargs, float(submitted_at))


def _reject_constant(name: str) -> None:
    """``NaN`` and ``Infinity`` are not JSON (``encode_message`` never writes them)."""
    raise PayloadError(f"payload is not JSON: {name} is not a JSON number")


def _is_time(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past float's range
        return False


def _module_name(function: Callable) -> str:
    """The importable name of a function's module, also when it was run as a script.

    ``python tasks.py`` names the module ``__main__``, but a worker imports it as ``tasks``:
    use the name the worker will see, so the two agree on the job's name.
    """
    module = function.__module__
    if module != "__main__":
        return module
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return spec.name.removesuffix(".__main__")
    return Path(getattr(main, "__file__", "__main__")).stem


def new_job_id() -> str:
    """A fresh, unique job id."""
    return uuid.uuid4().hex


@dataclass(eq=False)
class Job:
    """A registered job: call it directly, or ``dispatch`` it to the queue."""

    app: App
    fn: Callable[..., Any]
    name: str
    queue: str
    options: JobOptions = field(default_factory=JobOptions)

    @functools.cached_property
    def is_async(self) -> bool:
        """True for ``async def`` jobs (run on the worker's event loop when inline)."""
        return inspect.iscoroutinefunction(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def dispatch(self, *args: Any, **kwargs: Any) -> str:
        """Enqueue one call of this job; returns its job id.

        Raises:
            JobError: an argument is not JSON-serialisable.
        """
        job_id = new_job_id()
        body = encode_message(self.name, args, kwargs, time.time())
        self.app.backend.enqueue(self.queue, job_id, body)
        return job_id

    def dispatch_many(self, calls: list[tuple[tuple, dict]]) -> list[str]:
        """Enqueue several ``(args, kwargs)`` calls in one batch; returns their job ids."""
        now = time.time()
        messages = [(new_job_id(), encode_message(self.name, a, k, now)) for a, k in calls]
        self.app.backend.enqueue_many(self.queue, messages)
        return [job_id for job_id, _ in messages]


class App:
    """The registry of jobs and the backend they are dispatched to.

    Args:
        backend: a URL (``sqlite:///path/kqueue.db``, ``redis://host:6379/0``) or a ``Backend``.
            Default: a ``kqueue.db`` file in the working directory. Opened on first use.
        queue: the queue jobs go to unless their decorator names another.
    """

    def __init__(self, backend: str | Backend | None = None, *, queue: str = DEFAULT_QUEUE):
        self.backend_url = backend if isinstance(backend, str) else None
        self._backend = backend if isinstance(backend, Backend) else None
        if self._backend is None and self.backend_url is None:
            self.backend_url = f"sqlite:///{Path.cwd() / 'kqueue.db'}"
        self.queue = queue
        self.jobs: dict[str, Job] = {}

    @classmethod
    def from_spec(cls, spec: str) -> App:
        """Import the App named ``module:attribute`` from the working directory (as ``python -m``).

        Raises:
            KQueueError: the spec is malformed, the module does not import, or the attribute is
                missing or not a ``kqueue.App``.
        """
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise KQueueError(f"--app {spec!r}: expected module:attribute, e.g. tasks:app")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise KQueueError(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from None
        app = getattr(module, attribute, None)
        if not isinstance(app, cls):
            raise KQueueError(f"--app {spec!r}: {module_name}.{attribute} is not a kqueue.App")
        return app

    @property
    def backend(self) -> Backend:
        """The backend, opened on first use."""
        if self._backend is None:
            self._backend = open_backend(self.backend_url)
        return self._backend

    def job(
        self,
        fn: Callable | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        tier: Tier | str | None = None,
        estimated_duration_s: float | None = None,
        timeout_s: float | None = None,
        max_memory_mb: float | None = None,
        max_attempts: int | None = None,
    ) -> Any:
        """Register a function as a job; use as ``@app.job`` or ``@app.job(tier="pool", ...)``.

        The job's name (its ``job_class`` in traces and the key of its ``[jobs."<name>"]``
        table) is ``module.function`` unless ``name`` is given.

        Raises:
            JobError: the name is taken by another function.
            ConfigError: an option has a bad value (e.g. an unknown tier).
        """

        def register(function: Callable) -> Job:
            job_name = name or f"{_module_name(function)}.{function.__name__}"
            options = validate_job_options(
                JobOptions(
                    tier=tier,
                    estimated_duration_s=estimated_duration_s,
                    timeout_s=timeout_s,
                    max_memory_mb=max_memory_mb,
                    max_attempts=max_attempts,
                ),
                source=f"@app.job for {job_name!r}",
            )
            existing = self.jobs.get(job_name)
            if existing is not None and existing.fn is not function:
                raise JobError(f"job name {job_name!r} is already registered to {existing.fn!r}")
            job = Job(self, function, job_name, queue or self.queue, options)
            self.jobs[job_name] = job
            return job

        return register(fn) if fn is not None else register

    def with_backend(self, backend: str | Backend) -> App:
        """The same registered jobs dispatched to and served from another backend."""
        other = App(backend, queue=self.queue)
        for name, job in self.jobs.items():
            other.jobs[name] = Job(other, job.fn, job.name, job.queue, job.options)
        return other

    def close(self) -> None:
        """Close the backend if it was opened."""
        if self._backend is not None:
            self._backend.close()
