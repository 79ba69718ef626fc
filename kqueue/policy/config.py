"""The one frozen config object: defaults, validation, ``kqueue.toml`` loading, per-job overrides.

Precedence, highest first (from the prototype): the job's own attribute (the decorator), then a
worker CLI option, then the config file (its ``[jobs."<name>"]`` table, then its top-level keys),
then the built-in default below. ``Config.with_cli`` applies CLI options so that they beat the
file's per-job tables too; ``resolve_job`` applies the decorator on top.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kqueue.errors import ConfigError
from kqueue.policy.ordering import PRIORITY_MAX
from kqueue.policy.ratelimit import parse_rate_limit
from kqueue.policy.retry import RetryPolicy, backoff_s
from kqueue.policy.schedule import parse_schedules


class Tier(enum.StrEnum):
    """Where a job runs."""

    #: Let the router decide from the job's expected duration.
    AUTO = "auto"
    #: Inside the worker process: async jobs on its event loop, sync jobs on its thread pool.
    INLINE = "inline"
    #: On a supervised pool of long-lived processes, reused across jobs.
    POOL = "pool"
    #: On a fresh process of its own, with its own limits.
    ISOLATED = "isolated"


#: What each rule a setting states means, as a check on its value.
_CHECKS = {
    ">= 0": lambda value: value >= 0,
    "> 0": lambda value: value > 0,
    ">= 1": lambda value: value >= 1,
    "in (0, 1]": lambda value: 0 < value <= 1,
    "bool": lambda value: isinstance(value, bool),
    f"in -{PRIORITY_MAX}..{PRIORITY_MAX}": lambda value: abs(value) <= PRIORITY_MAX,
}


def _setting(default: Any, rule: str, kind: type | None = None, *, unbounded: bool = False) -> Any:
    """A numeric setting: its default and its rule (a key of ``_CHECKS``), named once.

    ``kind`` (int or float) is the default's type unless given (for ``None`` defaults);
    ``unbounded``: ``inf`` is a meaning, not a mistake (a routing threshold with no upper end).
    """
    kind = kind or type(default)
    assert rule in _CHECKS and kind in (int, float), (rule, kind)
    return field(default=default, metadata={"kind": kind, "rule": rule, "unbounded": unbounded})


def _flag(default: bool | None) -> Any:
    """A true/false setting (``None``: not set at this layer)."""
    return field(default=default, metadata={"kind": bool, "rule": "bool"})


@dataclass(frozen=True)
class JobOptions:
    """Per-job settings; ``None`` means "not set here, ask the next layer"."""

    tier: Tier | None = None
    estimated_duration_s: float | None = _setting(None, ">= 0", float)
    timeout_s: float | None = _setting(None, "> 0", float)
    max_memory_mb: float | None = _setting(None, "> 0", float)
    max_attempts: int | None = _setting(None, ">= 1", int)
    retry_backoff_s: float | None = _setting(None, ">= 0", float)
    retry_backoff_max_s: float | None = _setting(None, ">= 0", float)
    retry_jitter: bool | None = _flag(None)
    result_ttl_s: float | None = _setting(None, ">= 0", float)
    #: Within its queue, higher runs first (``kqueue.policy.ordering``); set at dispatch.
    priority: int | None = _setting(None, f"in -{PRIORITY_MAX}..{PRIORITY_MAX}", int)
    #: Starts of this job class per unit of time across every worker (``"100/min"``).
    rate_limit: str | None = None
    #: Most jobs of this class running at once across every worker.
    concurrency_limit: int | None = _setting(None, ">= 1", int)


@dataclass(frozen=True)
class JobSettings:
    """Per-job settings after precedence is applied: what the worker uses for one job."""

    tier: Tier
    estimated_duration_s: float | None
    timeout_s: float
    max_memory_mb: float
    max_attempts: int
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 300.0
    retry_jitter: bool = False
    #: How long the job's result (or its final state) is kept, seconds; 0 keeps none.
    result_ttl_s: float = 3600.0
    #: Shared limits of its class (``kqueue.policy.ratelimit``); None: unlimited.
    rate_limit: str | None = None
    concurrency_limit: int | None = None


@dataclass(frozen=True)
class Config:
    """Every setting of the runtime and the simulator, with its default. Build with ``load``."""

    #: Jobs expected to take at most this long run inline.
    inline_max_duration_s: float = _setting(1.0, ">= 0", unbounded=True)
    #: Jobs expected to take at most this long (and more than inline) run on the pool.
    pooled_max_duration_s: float = _setting(30.0, ">= 0", unbounded=True)
    #: Estimate used for a job class with no explicit estimate and too little history.
    default_estimate_s: float = _setting(5.0, ">= 0")
    #: Pool processes started with the worker (the pool never shrinks below this).
    pool_size: int = _setting(10, ">= 0")
    #: The pool grows up to this many processes while jobs wait.
    pool_max_size: int = _setting(20, ">= 0")
    #: Processes added or removed per scaling step.
    pool_scale_step: int = _setting(2, ">= 1")
    #: Seconds between two scaling steps.
    pool_scale_cooldown_s: float = _setting(3.0, ">= 0")
    #: Jobs running inline at once (async tasks plus sync threads).
    max_concurrent_inline: int = _setting(100, ">= 1")
    #: Isolated processes running at once.
    max_concurrent_isolated: int = _setting(5, ">= 0")
    #: A pool process is recycled after this many jobs.
    max_jobs_per_worker: int = _setting(1000, ">= 1")
    #: A pool process is recycled when its resident memory passes this.
    max_worker_memory_mb: float = _setting(512.0, "> 0", unbounded=True)
    #: Default per-job timeout; the job's process is killed past it.
    timeout_s: float = _setting(300.0, "> 0")
    #: Default per-job memory limit (hard limit for isolated processes).
    max_memory_mb: float = _setting(1024.0, "> 0")
    #: Default number of attempts before a job is dead-lettered.
    max_attempts: int = _setting(3, ">= 1")
    #: A leased job not acked or extended within this comes back to the queue.
    visibility_timeout_s: float = _setting(60.0, "> 0")
    #: First retry delay; doubles each attempt.
    retry_backoff_s: float = _setting(1.0, ">= 0")
    #: Retry delays never exceed this.
    retry_backoff_max_s: float = _setting(300.0, ">= 0")
    #: Draw each retry delay from the upper half of its backoff (spreads a burst of failures).
    retry_jitter: bool = _flag(False)
    #: How long a finished job's result and state are kept, seconds; 0 keeps none.
    result_ttl_s: float = _setting(3600.0, ">= 0")
    #: On SIGTERM, in-flight jobs get this long to finish before they are stopped and requeued.
    shutdown_grace_s: float = _setting(30.0, ">= 0")
    #: Most jobs leased in one round trip to the backend.
    fetch_batch_size: int = _setting(100, ">= 1")
    #: Seconds the worker waits before polling an empty queue again.
    poll_interval_s: float = _setting(0.2, "> 0")
    #: Recent durations kept per job class for the estimator.
    history_window: int = _setting(100, ">= 1")
    #: Recorded durations a job class needs before its history is trusted.
    history_min_samples: int = _setting(3, ">= 1")
    #: The quantile of recent durations used as a job class's estimate.
    estimate_quantile: float = _setting(0.9, "in (0, 1]")
    #: Memory the worker keeps its whole tree within (itself, inline jobs, pool and isolated
    #: processes), MB; ``inf`` keeps none. See ``kqueue.policy.admission``.
    memory_budget_mb: float = _setting(math.inf, "> 0", unbounded=True)
    #: Predicted memory of a job class before it has history, MB (``kqueue.policy.memory``);
    #: never above the job's own ``max_memory_mb``, which it is by default (``inf``): safe.
    default_job_memory_mb: float = _setting(math.inf, "> 0", unbounded=True)
    #: A job class with this many memory or signal deaths among its last ``quarantine_window``
    #: attempts runs isolated until it behaves (``kqueue.policy.quarantine``); 0 turns it off.
    quarantine_after_failures: int = _setting(3, ">= 0")
    #: Recent attempts per job class that ``quarantine_after_failures`` counts in.
    quarantine_window: int = _setting(10, ">= 1")
    #: Consecutive clean attempts that bring a quarantined class back to its own tier.
    quarantine_release_after: int = _setting(5, ">= 1")
    #: A quarantined class's memory limit: its recorded peak times this.
    quarantine_memory_headroom: float = _setting(1.5, "> 0")
    #: Give each pool and isolated process a memory cgroup with its job's limit where the host
    #: allows it (``kqueue.tiers.cgroup``); else, or when false, ``RLIMIT_AS``.
    memory_cgroups: bool = _flag(True)
    #: Let a pool job take a free isolated slot while the pool's wait is long
    #: (``kqueue.policy.router.route_by_load``).
    load_routing: bool = _flag(False)
    #: Load routing starts once the pool's expected wait passes this, seconds...
    load_route_enter_wait_s: float = _setting(5.0, ">= 0")
    #: ...and stops once it falls below this (hysteresis), seconds.
    load_route_exit_wait_s: float = _setting(2.0, ">= 0")
    #: Finished attempts the fleet trace keeps in the backend, all workers together (about a day
    #: at 1000 jobs/min; see docs/guide/dashboard.md for its memory); 0 appends none.
    trace_keep_rows: int = _setting(1_440_000, ">= 0")
    #: The schedules' leader lease: another worker leads within about this long of a crash.
    leader_lease_s: float = _setting(10.0, "> 0")
    #: Per-job overrides from the file's ``[jobs."<name>"]`` tables.
    #: (Left out of the hash, since a mapping proxy is unhashable; still compared for equality.)
    jobs: Mapping[str, JobOptions] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        _validate(self, source="config")

    @classmethod
    def load(cls, path: str | Path | None = None, **cli: Any) -> Config:
        """Build a config from a ``kqueue.toml`` (optional) and CLI options (``None`` = unset).

        Args:
            path: a TOML file with settings as top-level keys and ``[jobs."<name>"]`` tables.
            **cli: worker CLI options by setting name; they beat the file, per-job tables included.

        Raises:
            ConfigError: unknown key or bad value, naming the key, the file and the valid choices.
        """
        config = (
            cls() if path is None else cls.from_mapping(read_toml(Path(path)), source=str(path))
        )
        return config.with_cli(**cli)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<mapping>") -> Config:
        """Build a config from a parsed TOML mapping; ``source`` names it in errors."""
        data = dict(data)
        jobs = _parse_jobs(data.pop("jobs", {}), source)
        parse_schedules(data.pop("schedules", {}), source)  # checked here, used by the worker
        values = _check_keys(data, _setting_names(), source, where="")
        return _build(cls, values, source, jobs=MappingProxyType(jobs))

    def with_cli(self, **cli: Any) -> Config:
        """Return a copy with CLI options applied (``None`` values are ignored).

        A CLI option also beats the file's per-job tables: the key is removed from each of them.
        """
        given = {key: value for key, value in cli.items() if value is not None}
        if not given:
            return self
        _check_keys(given, _setting_names(), "the command line", where="")
        jobs = {
            name: dataclasses.replace(options, **{k: None for k in given if hasattr(options, k)})
            for name, options in self.jobs.items()
        }
        return _build(type(self), {**self.to_dict(), **given}, "the command line", jobs=jobs)

    def replace(self, **changes: Any) -> Config:
        """Return a validated copy with some top-level settings changed (used by the tuner).

        Unlike ``with_cli``, the file's per-job tables are kept as they are.
        """
        _check_keys(changes, _setting_names(), "Config.replace", where="")
        return _build(type(self), {**self.to_dict(), **changes}, "Config.replace", jobs=self.jobs)

    def to_dict(self) -> dict[str, Any]:
        """The top-level settings as a plain dict (without the per-job tables)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "jobs"}

    def to_toml(self) -> str:
        """Render as a ``kqueue.toml`` that ``load`` reads back to an equal config."""
        lines = [f"{key} = {_toml_value(value)}" for key, value in self.to_dict().items()]
        for name, options in sorted(self.jobs.items()):
            lines.append(f"\n[jobs.{_toml_string(name)}]")
            for key, value in dataclasses.asdict(options).items():
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def job_options(self, name: str) -> JobOptions:
        """The file's overrides for job ``name`` (empty options when there are none)."""
        return self.jobs.get(name, _NO_OPTIONS)


_NO_OPTIONS = JobOptions()


def resolve_job(config: Config, name: str, declared: JobOptions) -> JobSettings:
    """Apply precedence for one job: declared attribute > CLI > file's job table > file > default.

    Args:
        config: the worker's config (CLI options already applied with ``Config.with_cli``).
        name: the job's name, the key of its ``[jobs."<name>"]`` table.
        declared: what the job's decorator set.

    Raises:
        ConfigError: the declared tier is not a tier name.
    """
    table = config.job_options(name)

    def pick(key: str) -> Any:
        for layer in (declared, table):
            value = getattr(layer, key)
            if value is not None:
                return value
        return getattr(config, key, None)

    return JobSettings(
        tier=_as_tier(pick("tier") or Tier.AUTO, f"job {name!r}", where=""),
        estimated_duration_s=pick("estimated_duration_s"),
        timeout_s=pick("timeout_s"),
        max_memory_mb=pick("max_memory_mb"),
        max_attempts=pick("max_attempts"),
        retry_backoff_s=pick("retry_backoff_s"),
        retry_backoff_max_s=pick("retry_backoff_max_s"),
        retry_jitter=pick("retry_jitter"),
        result_ttl_s=pick("result_ttl_s"),
        rate_limit=pick("rate_limit"),
        concurrency_limit=pick("concurrency_limit"),
    )


def retry_delay_s(config: Config, attempt: int) -> float:
    """Backoff before the next attempt after ``attempt`` failed: base * 2**(attempt-1), capped.

    The config's defaults without jitter; a job's own rule is ``kqueue.policy.retry``.
    """
    policy = RetryPolicy(config.max_attempts, config.retry_backoff_s, config.retry_backoff_max_s)
    return backoff_s(policy, attempt)


def retry_policy(
    settings: JobSettings,
    retry_on: tuple[type[BaseException], ...] = (),
    no_retry_on: tuple[type[BaseException], ...] = (),
) -> RetryPolicy:
    """The retry rule of one job: its resolved settings and its decorator's exception classes."""
    return RetryPolicy(
        settings.max_attempts,
        settings.retry_backoff_s,
        settings.retry_backoff_max_s,
        settings.retry_jitter,
        tuple(retry_on),
        tuple(no_retry_on),
    )


def validate_job_options(options: JobOptions, source: str) -> JobOptions:
    """Check per-job options (decorator or file table); return them with ``tier`` as a Tier."""
    values = {k: v for k, v in dataclasses.asdict(options).items() if v is not None}
    return _parse_job_table(values, source, where="")


# --- validation -------------------------------------------------------------------------------


_JOB_KEYS = tuple(f.name for f in dataclasses.fields(JobOptions))
#: Each numeric setting's type and rule, from the fields of ``Config`` and ``JobOptions``.
_RULES: dict[str, tuple[type, str]] = {
    f.name: (f.metadata["kind"], f.metadata["rule"])
    for cls in (JobOptions, Config)
    for f in dataclasses.fields(cls)
    if "rule" in f.metadata
}
#: Settings for which ``inf`` means "no upper end" rather than a mistake.
_UNBOUNDED = frozenset(
    f.name for f in dataclasses.fields(Config) if f.metadata.get("unbounded", False)
)


def _setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Config) if f.name != "jobs")


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], source: str, where: str) -> dict:
    for key in data:
        if key not in valid:
            raise ConfigError(
                f"{source}: unknown key {where}{key!r}; valid keys are: {', '.join(valid)}"
            )
    return dict(data)


def _coerce(key: str, value: Any, source: str, where: str) -> Any:
    kind, meaning = _RULES[key]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}{key} = {value!r} is invalid; expected true/false")
        return value
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if ok_type and not (key in _UNBOUNDED and value == math.inf):
        ok_type = _finite(value)  # TOML has inf and nan
    if kind is int:
        ok_type = ok_type and float(value).is_integer()
    if not ok_type or not _CHECKS[meaning](value):
        expected = "an integer" if kind is int else "a finite number"
        raise ConfigError(
            f"{source}: {where}{key} = {value!r} is invalid; expected {expected} {meaning}"
        )
    return kind(value)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past float's range (from the command line or code)
        return False


def _validate(config: Config, source: str) -> None:
    for key in _setting_names():
        _coerce(key, getattr(config, key), source, where="")
    if config.pooled_max_duration_s < config.inline_max_duration_s:
        raise ConfigError(
            f"{source}: pooled_max_duration_s ({config.pooled_max_duration_s}) must be >= "
            f"inline_max_duration_s ({config.inline_max_duration_s})"
        )
    if config.pool_max_size < config.pool_size:
        raise ConfigError(
            f"{source}: pool_max_size ({config.pool_max_size}) must be >= "
            f"pool_size ({config.pool_size})"
        )
    _validate_memory(config, source)


def _validate_memory(config: Config, source: str) -> None:
    """A job memory limit above the budget could never be kept; hysteresis needs exit <= enter."""
    budget_mb = config.memory_budget_mb
    limits = {"max_memory_mb": config.max_memory_mb}
    for name, options in config.jobs.items():
        if options.max_memory_mb is not None:
            limits[f'[jobs."{name}"] max_memory_mb'] = options.max_memory_mb
    for where, limit_mb in limits.items():
        if limit_mb > budget_mb:
            raise ConfigError(
                f"{source}: {where} ({limit_mb:g}) is above memory_budget_mb ({budget_mb:g}); "
                "a job allowed that much could never run within the budget: lower the limit "
                "or raise the budget"
            )
    if config.load_route_exit_wait_s > config.load_route_enter_wait_s:
        raise ConfigError(
            f"{source}: load_route_exit_wait_s ({config.load_route_exit_wait_s}) must be <= "
            f"load_route_enter_wait_s ({config.load_route_enter_wait_s})"
        )


def _build(cls: type[Config], values: dict[str, Any], source: str, jobs: Mapping) -> Config:
    coerced = {key: _coerce(key, value, source, where="") for key, value in values.items()}
    try:
        return cls(**coerced, jobs=MappingProxyType(dict(jobs)))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config:", f"{source}:", 1)) from None


def _parse_job_table(table: Mapping[str, Any], source: str, where: str) -> JobOptions:
    values = _check_keys(table, _JOB_KEYS, source, where)
    if "tier" in values:
        values["tier"] = _as_tier(values["tier"], source, where)
    if values.get("rate_limit") is not None:
        parse_rate_limit(values["rate_limit"], f"{source}: {where}".rstrip(": "))
    for key in values.keys() & _RULES.keys():
        values[key] = _coerce(key, values[key], source, where)
    return JobOptions(**values)


def _as_tier(value: Any, source: str, where: str) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        choices = ", ".join(t.value for t in Tier)
        raise ConfigError(
            f"{source}: {where}tier = {value!r} is invalid; valid tiers are: {choices}"
        ) from None


def _parse_jobs(jobs: Any, source: str) -> dict[str, JobOptions]:
    if not isinstance(jobs, Mapping):
        raise ConfigError(f'{source}: "jobs" must be a table of [jobs."<job name>"] tables')
    parsed = {}
    for name, table in jobs.items():
        where = f'[jobs."{name}"] '
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: {where}must be a table, got {table!r}")
        parsed[name] = _parse_job_table(table, source, where)
    return parsed


def read_toml(path: Path, kind: str = "config") -> dict[str, Any]:
    """Parse a TOML file; a missing or invalid file is a ``ConfigError`` naming it.

    Args:
        path: the file.
        kind: what it is, for the message (``config``, ``host``).
    """
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} file not found") from None
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"{path}: cannot read the {kind} file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text at byte {exc.start}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return repr(value)


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also bans a raw DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
