"""Jobs: the ``App`` that registers them, the ``Job`` it dispatches, the handles it gives back.

A message on the broker is JSON (``kqueue.api.codec``). A worker looks its ``name`` up in its
app's registry; it never imports or unpickles anything a message names. ``dispatch`` returns a
``JobHandle`` (``kqueue.api.handle``); ``job.options(...)`` sets a delay, a due time, an id, a
unique key or the result's TTL for one dispatch (``kqueue.api.options``).
"""

from __future__ import annotations

import datetime
import functools
import importlib
import inspect
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, overload

from kqueue.api.codec import (  # noqa: F401 - the message codec's old home, kept for callers
    MESSAGE_VERSION,
    Message,
    decode_message,
    encode_message,
)
from kqueue.api.handle import CANCEL_RECORD_TTL_S, JobHandle
from kqueue.api.options import DispatchOptions, dispatch_options
from kqueue.api.periodic import periodic_decorator
from kqueue.backends import aio, open_backend
from kqueue.backends.base import Backend
from kqueue.errors import JobError, KQueueError
from kqueue.policy.config import JobOptions, validate_job_options
from kqueue.policy.retry import RetryPolicy
from kqueue.policy.schedule import Schedule

P = ParamSpec("P")
R = TypeVar("R")
#: The options of a plain ``dispatch``.
_NO_OPTIONS = DispatchOptions()

DEFAULT_QUEUE = "default"


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


def _job_options(options: dict[str, Any], source: str) -> JobOptions:
    valid = JobOptions.__dataclass_fields__
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise JobError(
            f"{source}: unknown option(s) {', '.join(unknown)}; valid: "
            f"name, queue, retry_on, no_retry_on, {', '.join(valid)}"
        )
    return JobOptions(**options)


def _exception_classes(value: Any, what: str, source: str) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, tuple | list) or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in value
    ):
        raise JobError(f"{source}: {what}={value!r}; expected a tuple of exception classes")
    return tuple(value)


#: Call shapes remembered per job by ``bind_error`` (a hostile producer cannot grow it further).
MAX_BIND_SHAPES = 64


def new_job_id() -> str:
    """A fresh, unique job id."""
    return uuid.uuid4().hex


def new_job_ids(count: int) -> list[str]:
    """``count`` fresh ids, as ``new_job_id`` makes them (random UUID 4s, hex), from one read
    of the system's randomness: a batch dispatch makes a thousand at once."""
    raw = os.urandom(16 * count)
    ids = []
    for offset in range(0, 16 * count, 16):
        value = int.from_bytes(raw[offset : offset + 16], "big")
        value = (value & ~_UUID_FIXED_BITS) | _UUID4_BITS  # as uuid.UUID(version=4) sets them
        ids.append(f"{value:032x}")
    return ids


#: The version and variant bits of a UUID, and their values in a random (version 4) one.
_UUID_FIXED_BITS = (0xF000 << 64) | (0xC000 << 48)
_UUID4_BITS = (0x4000 << 64) | (0x8000 << 48)


@dataclass(eq=False)
class Job(Generic[P, R]):
    """A registered job: call it directly, or ``dispatch`` it to the queue."""

    app: App
    fn: Callable[P, R]
    name: str
    queue: str
    #: What the decorator set (``None``: the config's layers decide).
    declared: JobOptions = field(default_factory=JobOptions)
    #: Retry only these exceptions (empty: all), and never these (``kqueue.policy.retry``).
    retry_on: tuple[type[BaseException], ...] = ()
    no_retry_on: tuple[type[BaseException], ...] = ()

    @functools.cached_property
    def is_async(self) -> bool:
        """True for ``async def`` jobs (run on the worker's event loop when inline)."""
        return inspect.iscoroutinefunction(self.fn)

    @functools.cached_property
    def signature(self) -> inspect.Signature | None:
        """The function's signature (None when Python cannot tell it)."""
        try:
            return inspect.signature(self.fn)
        except (TypeError, ValueError):
            return None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    @property
    def priority(self) -> int:
        """The priority its dispatches get unless ``options(priority=...)`` says otherwise."""
        return self.declared.priority or 0

    @functools.cached_property
    def _bind_errors(self) -> dict[tuple, str | None]:
        """``bind_error`` by call shape: whether arguments bind depends only on how many are
        positional and which names are given, so each worker binds each shape once."""
        return {}

    def bind_error(self, args: list | tuple, kwargs: dict) -> str | None:
        """Why ``args`` and ``kwargs`` cannot call this job, or None when they bind."""
        if self.signature is None:
            return None
        shape = (len(args), *kwargs)
        known = self._bind_errors
        if shape in known:
            return known[shape]
        try:
            self.signature.bind(*args, **kwargs)
            problem = None
        except TypeError as exc:
            problem = f"arguments do not match {self.name}{self.signature}: {exc}"
        if len(known) < MAX_BIND_SHAPES:
            known[shape] = problem
        return problem

    def retry_policy(self, settings: Any) -> RetryPolicy:
        """This job's retry rule with its resolved ``settings`` (a ``JobSettings``)."""
        return RetryPolicy(
            settings.max_attempts,
            settings.retry_backoff_s,
            settings.retry_backoff_max_s,
            settings.retry_jitter,
            self.retry_on,
            self.no_retry_on,
        )

    def options(
        self,
        *,
        delay_s: float | None = None,
        at: datetime.datetime | float | None = None,
        job_id: str | None = None,
        unique_key: str | None = None,
        unique_for_s: float | None = None,
        result_ttl_s: float | None = None,
        priority: int | None = None,
    ) -> JobCall[P, R]:
        """This job with options for one dispatch: ``job.options(delay_s=5).dispatch(...)``.

        Args:
            delay_s: run no earlier than this many seconds from now (>= 0).
            at: run no earlier than this (datetime, or epoch seconds; a past time runs now).
            job_id: the id to use (a known id returns that job's handle, nothing is added).
            unique_key: while a job with this key waits or runs (or within ``unique_for_s``
                of its dispatch), dispatching again returns that job's handle instead.
            unique_for_s: how long the key stays taken after dispatch at least, seconds.
            result_ttl_s: how long to keep this call's result, seconds (0 keeps none).
            priority: within the queue, higher runs first (an integer, default the job's own).

        Raises:
            JobError: a bad value (names the option).
        """
        checked = dispatch_options(
            self.name,
            delay_s=delay_s,
            at=at,
            job_id=job_id,
            unique_key=unique_key,
            unique_for_s=unique_for_s,
            result_ttl_s=result_ttl_s,
            priority=priority,
        )
        return JobCall(self, checked)

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue one call of this job; returns its handle (``str(handle)`` is its id).

        Raises:
            JobError: an argument is not JSON-serialisable, or the arguments do not match the
                function's signature.
        """
        return self.submit(_NO_OPTIONS, args, kwargs)

    async def dispatch_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """``dispatch``, awaited: on Redis a redis.asyncio call, elsewhere off the event loop."""
        return await self.submit_async(_NO_OPTIONS, args, kwargs)

    def submit(self, options: DispatchOptions, args: tuple, kwargs: dict) -> JobHandle[R]:
        """Enqueue one call with ``options``; what ``dispatch`` and ``JobCall`` do."""
        job_id, body, placement = self._message(options, args, kwargs)
        job_id = self.app.backend.submit(self.queue, job_id, body, **placement)
        return self.app.handle(job_id, queue=self.queue, fresh=True)

    async def submit_async(
        self, options: DispatchOptions, args: tuple, kwargs: dict
    ) -> JobHandle[R]:
        """``submit``, awaited (``dispatch_async`` and ``JobCall.dispatch_async``)."""
        job_id, body, placement = self._message(options, args, kwargs)
        job_id = await aio.client_for(self.app.backend).submit(
            self.queue, job_id, body, **placement
        )
        return self.app.handle(job_id, queue=self.queue, fresh=True)

    def _message(
        self, options: DispatchOptions, args: tuple, kwargs: dict
    ) -> tuple[str, bytes, dict[str, Any]]:
        """The id and body of one call, and where the backend places it (``Backend.submit``'s
        keywords: delay, unique key, priority); raises ``JobError`` for bad arguments."""
        now = time.time()
        delay_s = options.due_in_s(now)
        body = encode_message(
            self.name,
            args,
            kwargs,
            now,
            due_at=now + delay_s if delay_s > 0 else None,
            result_ttl_s=options.result_ttl_s,
        )
        problem = self.bind_error(args, kwargs)
        if problem is not None:
            raise JobError(f"job {self.name!r}: {problem}")
        placement = {
            "delay_s": delay_s,
            "unique_key": options.unique_key,
            "unique_for_s": options.unique_for_s,
            "priority": self.priority if options.priority is None else options.priority,
            "job_class": self.name,
        }
        return options.job_id or new_job_id(), body, placement

    # --- Celery's names for the same (kqueue.api.celery) --------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Celery's ``task.delay(*args, **kwargs)``: the same as ``dispatch``."""
        return self.submit(_NO_OPTIONS, args, kwargs)

    def apply_async(
        self,
        args: tuple | list | None = None,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
        eta: datetime.datetime | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> JobHandle[R]:
        """Celery's ``task.apply_async(args, kwargs, countdown=, eta=, task_id=)``.

        ``countdown`` is ``delay_s``, ``eta`` is ``at`` (a naive datetime is UTC, as in
        Celery), ``task_id`` is ``job_id``; ``unique_key``, ``unique_for_s`` and
        ``result_ttl_s`` may be given too.

        Raises:
            JobError: a Celery option kqueue does not support (each named), or a bad value.
        """
        from kqueue.api import celery  # Celery's names: imported by the apps that use them

        call = celery.apply_async_call(
            self.name,
            self.queue,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            task_id=task_id,
            **options,
        )
        return self.submit(dispatch_options(self.name, **call.options), call.args, call.kwargs)

    def dispatch_many(self, calls: list[tuple[tuple, dict]]) -> list[JobHandle[R]]:
        """Enqueue several ``(args, kwargs)`` calls in one batch; returns their handles."""
        for args, kwargs in calls:
            problem = self.bind_error(args, kwargs)
            if problem is not None:
                raise JobError(f"job {self.name!r}: {problem}")
        now = time.time()
        ids = new_job_ids(len(calls))
        bodies = [encode_message(self.name, args, kwargs, now) for args, kwargs in calls]
        messages = list(zip(ids, bodies, strict=True))
        self.app.backend.enqueue_many(
            self.queue, messages, priority=self.priority, job_class=self.name
        )
        return self.app.handles(ids, queue=self.queue)


@dataclass(frozen=True)
class JobCall(Generic[P, R]):
    """A job with the options of one dispatch (``job.options(...)``)."""

    job: Job[P, R]
    options: DispatchOptions

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue one call with these options; returns its handle (see ``Job.dispatch``)."""
        return self.job.submit(self.options, args, kwargs)

    async def dispatch_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """``dispatch`` with these options, awaited (see ``Job.dispatch_async``)."""
        return await self.job.submit_async(self.options, args, kwargs)


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
        #: Periodic schedules by name (``periodic``); workers fire them.
        self.schedules: dict[str, Schedule] = {}

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

    @overload
    def job(self, fn: Callable[P, R], /, **options: Any) -> Job[P, R]: ...

    @overload
    def job(self, fn: None = None, /, **options: Any) -> Callable[[Callable[P, R]], Job[P, R]]: ...

    def job(
        self,
        fn: Callable | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        retry_on: tuple[type[BaseException], ...] = (),
        no_retry_on: tuple[type[BaseException], ...] = (),
        **options: Any,
    ) -> Any:
        """Register a function as a job; use as ``@app.job`` or ``@app.job(tier="pool", ...)``.

        The job's name (its ``job_class`` in traces and the key of its ``[jobs."<name>"]``
        table) is ``module.function`` unless ``name`` is given. ``options`` are the settings of
        ``JobOptions`` (``tier``, ``estimated_duration_s``, ``timeout_s``, ``max_memory_mb``,
        ``max_attempts``, ``retry_backoff_s``, ``retry_backoff_max_s``, ``retry_jitter``,
        ``result_ttl_s``, ``priority``); ``retry_on`` / ``no_retry_on`` are exception classes
        (``kqueue.policy.retry`` says which wins).

        Raises:
            JobError: the name is taken by another function, or ``retry_on`` / ``no_retry_on``
                is not a tuple of exception classes.
            ConfigError: an option is unknown or has a bad value (e.g. an unknown tier).
        """

        def register(function: Callable) -> Job:
            job_name = name or f"{_module_name(function)}.{function.__name__}"
            source = f"@app.job for {job_name!r}"
            declared = validate_job_options(_job_options(options, source), source=source)
            existing = self.jobs.get(job_name)
            if existing is not None and existing.fn is not function:
                raise JobError(f"job name {job_name!r} is already registered to {existing.fn!r}")
            classes = (
                _exception_classes(retry_on, "retry_on", source),
                _exception_classes(no_retry_on, "no_retry_on", source),
            )
            job = Job(self, function, job_name, queue or self.queue, declared, *classes)
            self.jobs[job_name] = job
            return job

        return register(fn) if fn is not None else register

    def task(self, fn: Callable | None = None, /, **options: Any) -> Any:
        """Celery's ``@app.task``: ``@app.job`` taking Celery's task options where kqueue has
        them (``max_retries``, ``autoretry_for``, ``retry_backoff``, ``time_limit``,
        ``ignore_result``, ...; ``kqueue.api.celery``).

        Raises:
            JobError: a Celery option kqueue does not support, named with what to use instead.
        """
        from kqueue.api import celery

        return self.job(fn, **celery.job_options(options))

    def periodic(
        self,
        cron: str | None = None,
        *,
        every_s: float | None = None,
        args: tuple | list = (),
        kwargs: dict[str, Any] | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        catch_up: str = "none",
    ) -> Callable[[Any], Any]:
        """Fire a job periodically: ``@app.periodic("*/5 * * * *")`` above ``@app.job``.

        Args:
            cron: a five-field cron expression (``kqueue.policy.cron``), or
            every_s: seconds between ticks (ticks at whole multiples of it since the epoch).
            args, kwargs: the arguments of every run.
            timezone: the cron's timezone (an IANA name).
            name: the schedule's name (default: the job's name).
            catch_up: ticks missed while no worker ran: ``none`` (skip), ``last``, ``all``.

        Raises:
            ConfigError: a malformed cron (names the field), an unknown timezone, both or
                neither of ``cron`` and ``every_s``, an unknown ``catch_up``.
            JobError: the arguments do not fit the job, or the name is taken.
        """
        return periodic_decorator(
            self,
            cron,
            every_s=every_s,
            args=args,
            kwargs=kwargs,
            timezone=timezone,
            name=name,
            catch_up=catch_up,
        )

    def handle(self, job_id: str, *, queue: str | None = None, fresh: bool = False) -> JobHandle:
        """The handle of a job dispatched earlier, from its id (a web app stores ids).

        Args:
            job_id: the id (``str(handle)``).
            queue: its queue, if known; else the backend looks in every queue once.
            fresh: it was just dispatched there (``dispatch`` says so: ``result()`` can wait
                for it before looking it up).
        """
        return self.handles([job_id], queue=queue, fresh=fresh)[0]

    def handles(
        self, job_ids: list[str], *, queue: str | None = None, fresh: bool = False
    ) -> list[JobHandle]:
        """``handle`` of each id, all in one queue (a batch dispatch's)."""
        job = None
        if queue is not None:
            job = next((j for j in self.jobs.values() if j.queue == queue), None)
        ttl_s = (job.declared.result_ttl_s if job is not None else None) or CANCEL_RECORD_TTL_S
        return [
            JobHandle(self.backend, str(job_id), queue, cancel_ttl_s=ttl_s, fresh=fresh)
            for job_id in job_ids
        ]

    def with_backend(self, backend: str | Backend) -> App:
        """The same registered jobs dispatched to and served from another backend."""
        other = App(backend, queue=self.queue)
        for name, job in self.jobs.items():
            other.jobs[name] = Job(
                other, job.fn, job.name, job.queue, job.declared, job.retry_on, job.no_retry_on
            )
        return other

    def close(self) -> None:
        """Close the backend if it was opened."""
        if self._backend is not None:
            self._backend.close()

    async def aclose(self) -> None:
        """Close the async client of the running event loop (its Redis connections), if any."""
        if self._backend is not None:
            await aio.close_clients(self._backend)


class Celery(App):
    """Celery's ``Celery("proj", broker=URL)``: an ``App`` on ``broker``.

    An app written for Celery runs on kqueue after ``from celery import Celery`` becomes
    ``from kqueue import Celery``: ``@app.task``, ``task.delay``, ``task.apply_async`` and
    ``result.get(timeout=...)`` keep working (docs/guide/jobs.md, "Moving from Celery").

    Args:
        main: the app's name (Celery's; unused: job names are ``module.function`` as Celery's).
        broker: the backend URL (``redis://...``, ``sqlite:///...``, ``memory://``).
        backend: Celery's result backend; kqueue keeps results in ``broker``, so it is unused.

    Raises:
        JobError: other Celery settings (each named): kqueue has no equivalent of them here.
    """

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | Backend | None = None,
        backend: str | None = None,
        **settings: Any,
    ):
        if settings:
            raise JobError(
                f"Celery({main!r}): setting(s) {', '.join(sorted(settings))} not supported by "
                "kqueue; give broker= (results are kept there), and configure workers with "
                "kqueue.toml"
            )
        super().__init__(broker)
        self.main = main
