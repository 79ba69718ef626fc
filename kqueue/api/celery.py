"""Celery's names on kqueue: ``@app.task`` options and ``apply_async`` arguments, mapped once.

Code written for Celery keeps its calls (``task.delay``, ``task.apply_async``, ``@app.task``,
``result.get``); this module turns Celery's options into kqueue's, and refuses the ones kqueue has
no equivalent for by name, with what to use instead, rather than dropping them silently (a
dropped ``expires`` or ``rate_limit`` would change what the app does). The mapping and why:
docs/DECISIONS.md, "Celery compatibility".
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from kqueue.errors import JobError

#: ``apply_async`` arguments kqueue takes besides args/kwargs/countdown/eta/task_id.
APPLY_EXTRAS = ("unique_key", "unique_for_s", "result_ttl_s", "ignore_result", "queue")

#: ``@app.task`` options Celery has and kqueue does not, with what to do instead.
TASK_UNSUPPORTED = {
    "bind": "drop it and call kqueue.current_job() inside the job (its id, attempt, cancelled)",
    "base": "kqueue jobs are plain functions; drop the custom Task class",
    "default_retry_delay": "use retry_backoff=<seconds> (kqueue backs off from it)",
    "soft_time_limit": "use time_limit (kqueue kills the job at its timeout_s)",
    "rate_limit": (
        "Celery's limits each worker; kqueue's @app.job(rate_limit='100/min') limits the whole "
        "fleet, so set that deliberately"
    ),
    "serializer": "kqueue always sends JSON",
    "acks_late": "kqueue always acknowledges after the job ends (at least once)",
    "track_started": "kqueue always tracks it: handle.status() is 'running'",
    "expires": "kqueue does not expire queued jobs; cancel them with handle.cancel()",
    "priority": (
        "Celery's order depends on its broker (Redis: 0 first, RabbitMQ: 9 first); say "
        "kqueue's own priority=<int>, higher runs first"
    ),
}

#: ``apply_async`` options Celery has and kqueue does not, with what to do instead.
APPLY_UNSUPPORTED = {
    "priority": "use job.options(priority=<int>).dispatch(...): higher runs first in kqueue",
    "expires": "kqueue does not expire queued jobs; cancel them with handle.cancel()",
    "link": "dispatch the next job at the end of this one",
    "link_error": "catch the error in the job, or read handle.result() raising JobFailed",
}


@dataclass(frozen=True)
class CeleryCall:
    """One ``apply_async`` call in kqueue's terms: the call and ``job.options`` keywords."""

    args: tuple
    kwargs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


def apply_async_call(
    job_name: str,
    job_queue: str,
    args: Any,
    kwargs: Any,
    *,
    countdown: float | None = None,
    eta: Any = None,
    task_id: str | None = None,
    **extras: Any,
) -> CeleryCall:
    """Map ``apply_async(args, kwargs, countdown=, eta=, task_id=, ...)`` onto ``options``.

    ``countdown`` is ``delay_s`` (a negative one is refused, as a negative delay is), ``eta``
    is ``at`` (a naive datetime is UTC, as Celery reads it; an ISO string is parsed),
    ``task_id`` is ``job_id``, ``ignore_result=True`` is ``result_ttl_s=0``, ``queue`` must be
    the job's own queue.

    Raises:
        JobError: unsupported options (all of them named), or args / kwargs / eta of the
            wrong type.
    """
    where = f"job {job_name!r}: apply_async"
    unsupported = sorted(set(extras) - set(APPLY_EXTRAS))
    if unsupported:
        hints = "".join(
            f"; {name}: {APPLY_UNSUPPORTED[name]}"
            for name in unsupported
            if name in APPLY_UNSUPPORTED
        )
        raise JobError(
            f"{where}: Celery option(s) {', '.join(unsupported)} not supported by kqueue; "
            f"supported: args, kwargs, countdown, eta, task_id, {', '.join(APPLY_EXTRAS)}{hints}"
        )
    if countdown is not None and eta is not None:
        raise JobError(f"{where}: give countdown or eta, not both")
    queue = extras.pop("queue", None)
    if queue is not None and queue != job_queue:
        raise JobError(
            f"{where}(queue={queue!r}): this job's queue is {job_queue!r}; kqueue sends a job "
            "to the queue its decorator names (@app.job(queue=...))"
        )
    options = dict(extras)
    if options.pop("ignore_result", False):
        options["result_ttl_s"] = 0
    if countdown is not None:
        options["delay_s"] = countdown
    if eta is not None:
        options["at"] = _utc(where, eta)
    if task_id is not None:
        options["job_id"] = task_id
    return CeleryCall(_args(where, args), _kwargs(where, kwargs), options)


def job_options(celery_options: dict[str, Any]) -> dict[str, Any]:
    """``@app.task(...)`` options as ``@app.job(...)`` options.

    ``max_retries=N`` is ``max_attempts=N+1``, ``autoretry_for`` is ``retry_on``,
    ``dont_autoretry_for`` is ``no_retry_on``, ``retry_backoff`` (True: 1 s, or seconds) is
    ``retry_backoff_s``, ``retry_backoff_max`` is ``retry_backoff_max_s``, ``time_limit`` is
    ``timeout_s``, ``ignore_result=True`` is ``result_ttl_s=0``; ``name``, ``queue``,
    ``retry_jitter`` and kqueue's own options pass through.

    Raises:
        JobError: Celery options kqueue has no equivalent for, each named with what to do.
    """
    refused = sorted(set(celery_options) & set(TASK_UNSUPPORTED))
    if refused:
        hints = "; ".join(f"{name}: {TASK_UNSUPPORTED[name]}" for name in refused)
        raise JobError(f"@app.task: Celery option(s) {', '.join(refused)} not supported: {hints}")
    options = dict(celery_options)
    renamed = {
        "autoretry_for": "retry_on",
        "dont_autoretry_for": "no_retry_on",
        "retry_backoff_max": "retry_backoff_max_s",
        "time_limit": "timeout_s",
    }
    for celery_name, name in renamed.items():
        if celery_name in options:
            options[name] = options.pop(celery_name)
    if "max_retries" in options:
        options["max_attempts"] = _max_attempts(options.pop("max_retries"))
    backoff = options.pop("retry_backoff", False)
    if backoff is not False:
        options["retry_backoff_s"] = 1.0 if backoff is True else backoff
    if options.pop("ignore_result", False):
        options["result_ttl_s"] = 0
    return options


def _max_attempts(max_retries: Any) -> int:
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise JobError(
            f"@app.task(max_retries={max_retries!r}): expected a whole number >= 0 "
            "(kqueue always stops after max_retries + 1 attempts)"
        )
    return max_retries + 1


def _utc(where: str, eta: Any) -> datetime.datetime:
    if isinstance(eta, str):
        try:
            eta = datetime.datetime.fromisoformat(eta)
        except ValueError:
            raise JobError(f"{where}(eta={eta!r}): not an ISO 8601 date and time") from None
    if not isinstance(eta, datetime.datetime):
        raise JobError(f"{where}(eta={eta!r}): expected a datetime or an ISO 8601 string")
    return eta if eta.tzinfo is not None else eta.replace(tzinfo=datetime.UTC)


def _args(where: str, args: Any) -> tuple:
    if args is None:
        return ()
    if not isinstance(args, tuple | list):
        raise JobError(f"{where}(args={args!r}): expected a tuple or list of arguments")
    return tuple(args)


def _kwargs(where: str, kwargs: Any) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise JobError(f"{where}(kwargs={kwargs!r}): expected a dict of keyword arguments")
    return dict(kwargs)
