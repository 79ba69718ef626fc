"""The job commands: ``kqueue job ID`` (what a handle's ``info()`` says) and ``kqueue cancel ID``.

Both read only the backend (``--backend URL`` or the ``--app``'s), so an operator can look a job
up by the id a web app logged without importing the app.
"""

from __future__ import annotations

import datetime
import json

from kqueue.api.handle import JobHandle
from kqueue.cli.common import backend_from
from kqueue.policy.status import JobState


def _add_source(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="module:attribute of your kqueue.App (for its backend)")
    source.add_argument("--backend", help="backend URL")
    parser.add_argument("--queue", help="the job's queue (default: look in every queue)")


def add_job(subparsers) -> None:
    """Register ``kqueue job`` on ``subparsers``."""
    job = subparsers.add_parser("job", help="show one job's state, attempts, tier and times")
    job.add_argument("job_id", metavar="ID", help="the job id (str(handle))")
    _add_source(job)
    job.add_argument("--json", action="store_true", help="print the info as JSON")
    job.set_defaults(func=cmd_job)


def add_cancel(subparsers) -> None:
    """Register ``kqueue cancel`` on ``subparsers``."""
    cancel = subparsers.add_parser("cancel", help="cancel a waiting or running job")
    cancel.add_argument("job_id", metavar="ID", help="the job id (str(handle))")
    _add_source(cancel)
    cancel.set_defaults(func=cmd_cancel)


def cmd_job(args) -> int:
    """``kqueue job ID``: the job's info; exit code 1 when the backend does not know it."""
    info = JobHandle(backend_from(args), args.job_id, args.queue).info()
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        for key, value in info.to_dict().items():
            if value not in (None, "", 0) or key in ("job_id", "state"):
                print(f"{key:<13}{_shown(key, value)}")
    return 1 if info.state is JobState.UNKNOWN else 0


def cmd_cancel(args) -> int:
    """``kqueue cancel ID``: cancel it; exit code 1 when it had finished or is unknown."""
    before = JobHandle(backend_from(args), args.job_id, args.queue).cancel()
    if before is JobState.RUNNING:
        print(f"job {args.job_id} is running: its worker stops it and it will not be retried")
    elif before.finished or before is JobState.UNKNOWN:
        print(f"job {args.job_id} is {before.value}: nothing to cancel")
        return 1
    else:
        print(f"job {args.job_id} was {before.value}: cancelled, it will not run")
    return 0


def _shown(key: str, value) -> str:
    if key.endswith("_at") and isinstance(value, float):
        stamp = datetime.datetime.fromtimestamp(value).isoformat(sep=" ", timespec="milliseconds")
        return f"{stamp}  ({value:.3f})"
    return str(value)
