"""The dashboard: the fleet as an operator sees it, with the twin beside it (``kqueue dashboard``).

Layout, imports running down: ``window`` (the last hour of the fleet trace and its aggregates)
< ``fleet`` (queues, workers, hosts, alerts, classes and dead letters as data) < ``planner`` (the
twin, run as a ``kqueue simulate`` child process) < ``security`` (bind rule, token, CSRF,
headers) < ``app`` (the Starlette routes and Jinja2 pages). It reads the backend and the fleet
trace only, so it can stop and start at any time without losing history.
"""

from __future__ import annotations

from kqueue.dashboard.app import Settings, create_app
from kqueue.dashboard.security import TOKEN_ENV, DashboardSecurityError, check_bind

__all__ = ["TOKEN_ENV", "DashboardSecurityError", "Settings", "check_bind", "create_app"]
