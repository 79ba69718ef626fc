"""What the dashboard shows, as plain data: queues, workers, hosts, alerts, classes, dead letters.

``FleetView`` reads the backend at most every ``REFRESH_S`` however many pages ask (one refresh
serves every open page and every JSON call), so an open page costs the backend a few small reads
every two seconds. Everything here is data for the templates and the JSON endpoints alike;
nothing is HTML, and nothing read from the backend is trusted: a worker status that is not a
status is skipped, a message that does not decode shows as undecodable.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from kqueue.api.codec import decode_message
from kqueue.dashboard.window import TraceWindow
from kqueue.errors import KQueueError, PayloadError

#: Least time between two reads of the backend, seconds.
REFRESH_S = 1.0
#: Dead letters listed on the page (and by ``/api/dead``).
DEAD_LIMIT = 200
#: p95 wait a queue is held to when the dashboard is given none for it, seconds.
DEFAULT_WAIT_SLO_S = 60.0
_STATUS_KEYS = {"worker", "pid", "queues", "done"}


@dataclass
class Snapshot:
    """One read of the backend."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    workers: list[dict] = field(default_factory=list)
    read_at: float = 0.0
    #: What went wrong on the last read ("" when it worked).
    error: str = ""


class FleetView:
    """The fleet as the dashboard shows it, from one backend.

    Args:
        backend: the fleet's backend.
        wait_slo_s: p95 wait each queue is held to, seconds, by queue name.
        default_slo_s: the SLO of a queue not in ``wait_slo_s``.
        window: the trace window (default: the last hour of ``backend``'s fleet trace).
    """

    def __init__(
        self,
        backend,
        wait_slo_s: Mapping[str, float] | None = None,
        default_slo_s: float = DEFAULT_WAIT_SLO_S,
        window: TraceWindow | None = None,
    ):
        self.backend = backend
        self.wait_slo_s, self.default_slo_s = dict(wait_slo_s or {}), default_slo_s
        self.window = window or TraceWindow(backend)
        self._snapshot = Snapshot()
        self._lock = threading.Lock()
        #: The most memory the fleet's workers and processes used, as seen by this dashboard.
        self.peak_memory_mb = 0.0

    def snapshot(self) -> Snapshot:
        """The latest read of the backend, refreshed when older than ``REFRESH_S``."""
        with self._lock:
            if time.time() - self._snapshot.read_at >= REFRESH_S:
                self._snapshot = self._read()
            return self._snapshot

    def _read(self) -> Snapshot:
        try:
            counts = self.backend.counts()
            workers = parse_statuses(self.backend.worker_statuses())
            self.window.refresh()
        except (KQueueError, OSError) as exc:
            return Snapshot(self._snapshot.counts, self._snapshot.workers, time.time(), str(exc))
        memory = sum(host["memory_mb"] for host in hosts(workers))
        self.peak_memory_mb = max(self.peak_memory_mb, memory)
        return Snapshot(counts, workers, time.time())

    def slo_s(self, queue: str) -> float:
        """The p95 wait ``queue`` is held to, seconds."""
        return self.wait_slo_s.get(queue, self.default_slo_s)

    def overview(self) -> dict:
        """Queues, workers, hosts, throughput and alerts (``/api/overview``)."""
        snap = self.snapshot()
        waits = self.window.waits("queue")
        names = sorted(
            set(snap.counts) | set(waits) | {q for w in snap.workers for q in w["queues"]}
        )
        queues = []
        for name in names:
            depth = snap.counts.get(name, {})
            wait = waits.get(name, {})
            queues.append(
                {
                    "queue": name,
                    **{s: int(depth.get(s, 0)) for s in ("ready", "scheduled", "leased", "dead")},
                    "p95_wait_s": wait.get("p95_wait_s"),
                    "recent_p95_wait_s": wait.get("recent_p95_wait_s"),
                    "slo_s": self.slo_s(name),
                }
            )
        return {
            "queues": queues,
            "workers": snap.workers,
            "hosts": hosts(snap.workers),
            "throughput_per_min": {
                "tier": self.window.per_minute("tier"),
                "queue": self.window.per_minute("queue"),
            },
            "waits_by_tier": self.window.waits("tier"),
            "alerts": alerts(queues),
            "trace_rows": self.window.rows,
            "read_at": snap.read_at,
            "error": snap.error,
        }

    def classes(self) -> list[dict]:
        """Per job class over the window (``/api/classes``)."""
        self.snapshot()
        return self.window.classes()

    def dead(self, limit: int = DEAD_LIMIT) -> list[dict]:
        """The newest dead letters with their job's name, arguments and error (``/api/dead``)."""
        return [dead_letter(letter) for letter in self.backend.dead_letters(limit=limit)]


def parse_statuses(statuses) -> list[dict]:
    """Live workers' statuses as dicts; one that is not a worker status is skipped."""
    workers = []
    now = time.time()
    for status in statuses:
        try:
            body = json.loads(status.body)
        except ValueError:
            continue
        if not isinstance(body, dict) or not body.keys() >= _STATUS_KEYS:
            continue
        tiers = body.get("tiers") if isinstance(body.get("tiers"), dict) else {}
        workers.append(
            {
                "worker": str(status.worker_id),
                "host": str(body.get("host", "")),
                "pid": body.get("pid"),
                "queues": [str(q) for q in body.get("queues") or []],
                "done": body.get("done"),
                "memory_mb": _number(body.get("memory_mb")),
                "age_s": round(now - status.published_at, 1),
                "tiers": {str(name): _tier(info) for name, info in tiers.items()},
                "worker_config_toml": str(body.get("config_toml") or ""),
            }
        )
    workers.sort(key=lambda w: (w["host"], w["worker"]))
    return workers


def _tier(info) -> dict:
    info = info if isinstance(info, dict) else {}
    processes = [p for p in info.get("processes") or [] if isinstance(p, dict)]
    return {
        "running": info.get("running", 0),
        "capacity": info.get("capacity", 0),
        "waiting": info.get("waiting", 0),
        "processes": [
            {
                "pid": p.get("pid"),
                "state": str(p.get("state", "")),
                "memory_mb": _number(p.get("memory_mb")),
                "jobs_done": p.get("jobs_done"),
                "job": str(p.get("job") or ""),
            }
            for p in processes
        ],
    }


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


def hosts(workers: list[dict]) -> list[dict]:
    """Per host: its workers' and their processes' memory, against the fleet's budget."""
    by_host: dict[str, dict] = {}
    for worker in workers:
        host = by_host.setdefault(
            worker["host"], {"host": worker["host"], "workers": 0, "memory_mb": 0.0}
        )
        host["workers"] += 1
        host["memory_mb"] += worker["memory_mb"] + sum(
            p["memory_mb"] for tier in worker["tiers"].values() for p in tier["processes"]
        )
        host["budget_mb"] = _budget_mb(worker["worker_config_toml"])
    return [by_host[name] for name in sorted(by_host)]


def _budget_mb(config_toml: str) -> float | None:
    """The worker's ``memory_budget_mb``, if its settings have one."""
    import tomllib

    try:
        value = tomllib.loads(config_toml).get("memory_budget_mb")
    except tomllib.TOMLDecodeError:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value > 0 else None


def alerts(queues: list[dict]) -> list[dict]:
    """A long-wait alert for each queue whose recent p95 wait is past its SLO."""
    found = []
    for queue in queues:
        recent = queue["recent_p95_wait_s"]
        if recent is not None and recent > queue["slo_s"]:
            found.append(
                {
                    "queue": queue["queue"],
                    "message": f"p95 wait {recent:.1f} s over the last 5 min is past its "
                    f"SLO of {queue['slo_s']:g} s",
                }
            )
    return found


def dead_letter(letter) -> dict:
    """A dead letter as data: its job's name and arguments (if the body decodes) and error."""
    name, arguments = "", ""
    try:
        message = decode_message(letter.body)
        name = message.name
        arguments = json.dumps({"args": message.args, "kwargs": message.kwargs})[:2000]
    except PayloadError as exc:
        arguments = f"(undecodable message: {exc})"
    return {
        "job_id": letter.job_id,
        "queue": letter.queue,
        "job_class": name,
        "arguments": arguments,
        "attempts": letter.attempts,
        "error": letter.reason,
        "failed_at": letter.failed_at,
    }
