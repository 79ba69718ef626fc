"""Backends, chosen by URL scheme: ``sqlite:///path`` (default), ``redis://``, ``memory://``.

Layout: ``base`` (the interface and its records), ``sqlite`` (embedded), ``redis`` (production,
its Lua in ``redis_scripts``), ``memory`` (in-process, for an app's unit tests).
"""

from __future__ import annotations

import enum
import importlib
from urllib.parse import parse_qsl, urlencode, urlsplit

from kqueue.backends.base import Backend, DeadLetter, JobRecord, Lease, State, WorkerStatus
from kqueue.errors import BackendError


class BackendKind(enum.StrEnum):
    """The URL schemes kqueue serves."""

    #: Embedded SQLite file, zero set-up, safe with several worker processes on one host.
    SQLITE = "sqlite"
    #: Redis, shared by workers on many hosts.
    REDIS = "redis"
    #: Redis over TLS.
    REDISS = "rediss"
    #: Redis whose master Sentinel finds (failover); see ``redis_connect`` for the URL.
    REDIS_SENTINEL = "redis+sentinel"
    #: In this process's memory, for an application's unit tests.
    MEMORY = "memory"


#: module and class implementing each kind, imported on demand (redis is only needed for redis).
_IMPLEMENTATIONS: dict[BackendKind, tuple[str, str]] = {
    BackendKind.SQLITE: ("kqueue.backends.sqlite", "SQLiteBackend"),
    BackendKind.REDIS: ("kqueue.backends.redis", "RedisBackend"),
    BackendKind.REDISS: ("kqueue.backends.redis", "RedisBackend"),
    BackendKind.REDIS_SENTINEL: ("kqueue.backends.redis_sentinel", "SentinelBackend"),
    BackendKind.MEMORY: ("kqueue.backends.memory", "MemoryBackend"),
}


def open_backend(url: str) -> Backend:
    """Open the backend a URL names.

    Raises:
        BackendError: the scheme is unknown (names the valid ones) or the URL is malformed.
    """
    scheme = urlsplit(url).scheme
    try:
        kind = BackendKind(scheme)
    except ValueError:
        choices = ", ".join(f"{k.value}://" for k in BackendKind)
        raise BackendError(
            f"backend URL {redact_url(url)!r} has unknown scheme {scheme!r}; valid: {choices}"
        ) from None
    module_name, class_name = _IMPLEMENTATIONS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f"the {kind.value} backend is not available ({exc}); run pip install kqueue"
        ) from None
    return getattr(module, class_name).from_url(url)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to log.

    Both places redis-py reads a secret from are covered: ``user:password@`` and query options
    such as ``?password=`` or ``?ssl_password=`` (any option whose name contains "password").
    """
    parts = urlsplit(url)
    if parts.password is None and "password" not in parts.query.lower():
        return url  # unchanged: geturl() would rewrite sqlite:///path as sqlite:/path
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    if "password" in parts.query.lower():
        options = [
            (name, "***" if "password" in name.lower() else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(options, safe="/*"))
    return parts.geturl()


__all__ = [
    "Backend",
    "BackendKind",
    "DeadLetter",
    "JobRecord",
    "Lease",
    "State",
    "WorkerStatus",
    "open_backend",
    "redact_url",
]
