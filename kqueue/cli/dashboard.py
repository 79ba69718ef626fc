"""``kqueue dashboard``: serve the web dashboard of a fleet (``kqueue.dashboard``).

``--backend URL`` is the fleet's backend; the page binds ``127.0.0.1:8000`` unless told
otherwise, and a non-loopback ``--host`` needs ``--token`` (or ``$KQUEUE_DASHBOARD_TOKEN``).
Starlette and uvicorn are imported only when it runs, with an install hint when missing.
"""

from __future__ import annotations

import argparse
import os
import sys

from kqueue.errors import KQueueError


def add_dashboard(subparsers) -> None:
    """Register ``kqueue dashboard`` on ``subparsers``."""
    p = subparsers.add_parser(
        "dashboard",
        help="serve the web dashboard: queues, workers, job classes, dead letters, the twin",
        description="Serve the dashboard of the fleet on --backend. Binds 127.0.0.1 by default; "
        "another address needs a token (--token or $KQUEUE_DASHBOARD_TOKEN), which every "
        "request must then carry.",
    )
    p.add_argument("--backend", required=True, help="the fleet's backend URL")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument("--token", help="token every request needs (default $KQUEUE_DASHBOARD_TOKEN)")
    p.add_argument("--config", help="kqueue.toml the twin runs (default: what workers publish)")
    p.add_argument("--host-profile", help="host profile TOML for the twin (kqueue calibrate)")
    p.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="QUEUE=SECONDS",
        help="p95 wait SLO of a queue (repeatable); others get --default-slo-s",
    )
    p.add_argument("--default-slo-s", type=float, default=60.0, help="SLO of other queues (60)")
    p.set_defaults(func=cmd_dashboard)


def _slos(pairs: list[str]) -> dict[str, float]:
    slos = {}
    for pair in pairs:
        queue, _, seconds = pair.partition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not queue or not value > 0:
            raise KQueueError(f"--slo {pair!r}: expected QUEUE=SECONDS with SECONDS > 0")
        slos[queue] = value
    return slos


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Check the bind, build the app and serve it until interrupted; the exit code."""
    try:
        import uvicorn

        from kqueue.dashboard import Settings, check_bind, create_app
        from kqueue.dashboard.security import TOKEN_ENV, is_loopback
    except ImportError as exc:
        print(f"kqueue dashboard: {exc}; run pip install 'kqueue[dashboard]'", file=sys.stderr)
        return 2
    from kqueue.policy.config import Config

    token = args.token or os.environ.get(TOKEN_ENV) or None
    check_bind(args.host, token)  # DashboardSecurityError: main prints it, exit 2
    settings = Settings(
        backend_url=args.backend,
        token=token,
        loopback_only=is_loopback(args.host) and token is None,
        config=Config.load(args.config) if args.config else None,
        host_profile=args.host_profile,
        wait_slo_s=_slos(args.slo),
        default_slo_s=args.default_slo_s,
    )
    app = create_app(settings)
    print(f"kqueue dashboard on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=2)  # fmt: skip
    return 0
