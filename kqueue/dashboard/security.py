"""Who may see the dashboard and change the fleet: bind rule, token, CSRF, browser headers.

- ``check_bind``: a bind address other than loopback needs a token (``--token`` or
  ``KQUEUE_DASHBOARD_TOKEN``), else the dashboard refuses to start.
- ``Guard`` (ASGI middleware): with a token, every request but the login form needs it, as an
  ``Authorization: Bearer`` header (scripts) or the cookie the login form sets (browsers);
  without it the answer is 401. On loopback without a token, only a loopback ``Host`` header is
  served, so a web page cannot reach the dashboard through DNS rebinding.
- ``check_csrf``: every POST carries the dashboard's CSRF token (a form field or the
  ``X-CSRF-Token`` header), random per dashboard process; a POST without it gets 403.
- Every response carries a strict Content-Security-Policy (scripts only from ``/static``,
  nothing inline), ``nosniff``, no framing and no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from urllib.parse import parse_qsl

from kqueue.errors import KQueueError

#: The environment variable a token may come from instead of ``--token``.
TOKEN_ENV = "KQUEUE_DASHBOARD_TOKEN"
#: The cookie the login form sets.
COOKIE = "kqueue_dashboard_token"
#: Paths served without the token (the login form itself).
OPEN_PATHS = ("/login",)
HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]  # fmt: skip
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class DashboardSecurityError(KQueueError):
    """Raised when the dashboard would start unprotected on a non-loopback address."""


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.1``, ``::1``, ``localhost`` and the rest of 127.0.0.0/8."""
    if host.strip("[]") in _LOOPBACK_NAMES or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token.

    Raises:
        DashboardSecurityError: ``host`` is not loopback and no token was given.
    """
    if not is_loopback(host) and not token:
        raise DashboardSecurityError(
            f"refusing to serve the dashboard on {host} without a token: anyone who can reach "
            f"it could retry and delete jobs. Give --token T (or set {TOKEN_ENV}), or bind "
            "127.0.0.1 and reach it through an SSH tunnel"
        )


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the expected one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """ASGI middleware: the token, the loopback Host rule and the security headers.

    Args:
        app: the ASGI app it protects.
        token: the token every request needs, or None (loopback only).
        loopback_only: serve only requests whose ``Host`` is a loopback name.
    """

    def __init__(self, app, token: str | None, loopback_only: bool):
        self.app, self.token, self.loopback_only = app, token, loopback_only

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _plain(send, *refusal)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope, headers: dict) -> tuple[int, str] | None:
        if self.loopback_only:
            host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0]
            if not is_loopback(host):
                return 400, f"this dashboard answers only on a loopback address, not {host[:60]!r}"
        if self.token is None or scope["path"] in OPEN_PATHS:
            return None
        if same(_presented_token(headers), self.token):
            return None
        return 401, "this dashboard needs its token: open /login, or send Authorization: Bearer"


def _presented_token(headers: dict) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _plain(send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


def new_csrf_token() -> str:
    """A random CSRF token for one dashboard process."""
    return secrets.token_urlsafe(32)


#: Largest POST body read, bytes (the forms hold a few short fields).
MAX_FORM_BYTES = 16 * 1024
#: Most fields read from one form.
MAX_FORM_FIELDS = 50


class FormError(KQueueError):
    """Raised when a POST body is not a small URL-encoded form."""


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """The fields of a URL-encoded form body (the last of repeated names wins).

    Only ``application/x-www-form-urlencoded`` is read (what the pages' forms send): no
    multipart parser, no files.

    Raises:
        FormError: another content type, a body past ``MAX_FORM_BYTES``, more than
            ``MAX_FORM_FIELDS`` fields, or text that is not UTF-8.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(f"expected a URL-encoded form, got content type {kind[:60]!r}")
    if len(body) > MAX_FORM_BYTES:
        raise FormError(f"form of {len(body)} bytes is past the limit of {MAX_FORM_BYTES}")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError as exc:
        raise FormError(f"form is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # too many fields
        raise FormError(f"form has too many fields: {exc}") from None
    return dict(pairs)


async def check_csrf(request, expected: str) -> dict[str, str] | None:
    """The POST's form fields if it carries the CSRF token ``expected``, else None (a 403).

    Raises:
        FormError: the body is not a small URL-encoded form (a 400).
    """
    body = await _read_body(request)
    fields = parse_form(body, request.headers.get("content-type", "")) if body else {}
    given = request.headers.get("x-csrf-token") or fields.get("csrf")
    return fields if same(given, expected) else None


async def _read_body(request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise FormError(f"form is past the limit of {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
