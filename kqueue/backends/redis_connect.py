"""Reading a ``redis+sentinel://`` URL: which sentinels, which service, which database.

``redis+sentinel://[:password@]host1:26379,host2:26379/mymaster/0?wait_replicas=1`` names the
sentinels to ask (port 26379 when left out), the service (the master's name in their config),
the database (default 0) and these options:

- ``wait_replicas`` (default 0): after each dispatch and ack, ``WAIT`` until this many replicas
  have the write, so a failover cannot lose it; 0 is Redis's asynchronous replication.
- ``wait_timeout_ms`` (default 1000): how long ``WAIT`` may take before the call fails with
  ``ReplicationTimeout``.
- ``sentinel_password``: the sentinels' own password (the one in the URL is the master's).
- ``prefix``: what every key starts with, as on ``redis://`` URLs.

Parsing is pure (no connection): errors name the part of the URL that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from kqueue.backends import redact_url
from kqueue.errors import BackendError

#: The scheme of a Sentinel-managed Redis.
SCHEME = "redis+sentinel"
#: Where sentinels listen unless the URL says otherwise.
SENTINEL_PORT = 26379
#: ``WAIT``'s timeout unless the URL says otherwise, milliseconds.
WAIT_TIMEOUT_MS = 1000
#: The query options a sentinel URL may carry.
OPTIONS = ("wait_replicas", "wait_timeout_ms", "sentinel_password", "prefix")


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says (``prefix`` stays in ``take_prefix``'s hands)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    username: str | None = None
    sentinel_password: str | None = None
    wait_replicas: int = 0
    wait_timeout_ms: int = WAIT_TIMEOUT_MS


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL.

    Raises:
        BackendError: the scheme, a sentinel address, the service, the database or an option
            is wrong; the message names which, and never shows a password.
    """
    try:
        safe, parts = redact_url(url), urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        raise BackendError(f"sentinel URL is malformed: {exc}") from None
    if parts.scheme != SCHEME:
        raise BackendError(f"backend URL {safe!r}: scheme must be {SCHEME}://")
    auth, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(auth)
    service, db = _path(parts.path, safe)
    options = _options(parts.query, safe)
    return SentinelURL(
        sentinels=_sentinels(hosts, safe),
        service=service,
        db=db,
        password=password,
        username=username,
        sentinel_password=options.get("sentinel_password"),
        wait_replicas=_count(options, "wait_replicas", 0, 0, safe),
        wait_timeout_ms=_count(options, "wait_timeout_ms", WAIT_TIMEOUT_MS, 1, safe),
    )


def _credentials(auth: str) -> tuple[str | None, str | None]:
    if not auth:
        return None, None
    user, colon, password = auth.partition(":")
    if not colon:
        return None, unquote(user) or None  # redis+sentinel://secret@host: a bare password
    return unquote(user) or None, unquote(password) or None


def _sentinels(hosts: str, safe: str) -> tuple[tuple[str, int], ...]:
    if not hosts:
        raise BackendError(
            f"sentinel URL {safe!r}: no sentinel addresses; write host:port[,host:port...] "
            "after //, e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster"
        )
    return tuple(_address(item, safe) for item in hosts.split(","))


def _address(item: str, safe: str) -> tuple[str, int]:
    host, colon, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    host = host.strip("[]")  # [::1]:26379
    if not host:
        raise BackendError(f"sentinel URL {safe!r}: sentinel address {item!r} has no host")
    if not colon:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BackendError(
            f"sentinel URL {safe!r}: sentinel address {item!r} has port {port_text!r}; "
            "expected a number from 1 to 65535"
        )
    return host, int(port_text)


def _path(path: str, safe: str) -> tuple[str, int]:
    pieces = [piece for piece in path.split("/") if piece]
    if not pieces:
        raise BackendError(
            f"sentinel URL {safe!r}: no service name; add the master's name from the sentinels' "
            "config after the addresses, e.g. .../mymaster/0"
        )
    if len(pieces) > 2:
        raise BackendError(
            f"sentinel URL {safe!r}: path {path!r} has {len(pieces)} parts; expected "
            "/<service>[/<db>]"
        )
    if len(pieces) == 1:
        return unquote(pieces[0]), 0
    if not pieces[1].isdigit():
        raise BackendError(
            f"sentinel URL {safe!r}: database {pieces[1]!r} is not a number >= 0 (path "
            "/<service>/<db>)"
        )
    return unquote(pieces[0]), int(pieces[1])


def _options(query: str, safe: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BackendError(
            f"sentinel URL {safe!r}: unknown option(s) {', '.join(unknown)}; valid: "
            f"{', '.join(OPTIONS)}"
        )
    return options


def _count(options: dict[str, str], name: str, default: int, least: int, safe: str) -> int:
    text = options.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < least:
        raise BackendError(
            f"sentinel URL {safe!r}: {name}={text!r} must be a whole number >= {least}"
        )
    return int(text)
