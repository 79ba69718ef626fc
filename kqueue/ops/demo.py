"""The demo workload behind ``kqueue demo``: the prototype's working check on a real worker.

Three jobs of 3 s each (``time.sleep``) and twenty fast ones are dispatched, then a burst worker
runs them all. The prototype's criterion: the three slow jobs finish in about 3 s together, each
runs once, and the queue is empty afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kqueue.job import App
from kqueue.policy import read_trace
from kqueue.policy.config import Config

app = App()


@app.job(name="demo.report", estimated_duration_s=3.0)
def report(seconds: float) -> None:
    """A medium job: sleeps ``seconds`` (stands in for rendering a report)."""
    time.sleep(seconds)


@app.job(name="demo.notify", estimated_duration_s=0.01)
async def notify(user_id: int) -> None:
    """A fast async job: a short I/O wait (stands in for sending a mail)."""
    await asyncio.sleep(0.01)


def main(backend_url: str | None, trace_out: Path) -> int:
    """Dispatch the demo workload, run a burst worker on it, print what happened."""
    from kqueue.worker import Worker

    demo = app if backend_url is None else app.with_backend(backend_url)
    trace_out.unlink(missing_ok=True)
    for _ in range(3):
        demo.jobs["demo.report"].dispatch(3.0)
    demo.jobs["demo.notify"].dispatch_many([((i,), {}) for i in range(20)])
    started = time.perf_counter()
    config = Config(pool_size=3, pool_max_size=3)
    summary = asyncio.run(Worker(demo, config, burst=True, trace_out=str(trace_out)).run())
    elapsed_s = time.perf_counter() - started
    trace = read_trace(trace_out)
    print(f"{summary.done} jobs in {elapsed_s:.2f} s on backend {demo.backend_url}")
    print(
        trace.groupby(["job_class", "tier", "status"])
        .agg(jobs=("job_id", "count"), mean_s=("duration_s", "mean"))
        .to_string()
    )
    left = sum(sum(v for k, v in c.items() if k != "dead") for c in demo.backend.counts().values())
    print(f"left in the queue: {left}; trace: {trace_out}")
    return 0 if summary.by_status.get("ok", 0) == summary.done and left == 0 else 1
