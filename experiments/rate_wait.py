"""Experiment: the wait of a rate-limited class over two live workers, against the twin and a
first-come-first-served bucket.

Scenario: one private Redis and two ``kqueue run`` workers (inline only). A client dispatches
``--jobs`` jobs of one class with ``rate_limit=--rate`` at Poisson times (``--arrivals`` a
second, seeded), each job carrying when it was sent; each job writes when it started. Printed:
the p50 / p95 / max wait (start - sent) live, in the twin on the same arrivals (one worker, an
ideal host, the whole limit), and for a FCFS bucket of the limit's size (with one token,
``start = max(sent, previous start + 1 / rate)``: a job starts on a token or when the tokens
owed by the jobs before it have come). ``--check`` exits 1 unless the live p95
is within ``--check-ratio`` of the FCFS bucket's (plus ``CHECK_SLACK_S`` for a loaded box).

    python experiments/rate_wait.py --jobs 120 --rate 2/s --arrivals 1.2

(2/s is a bucket of one token, as 100/min is; 10/s holds 5, which absorbs Poisson bursts.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.job import App  # noqa: E402
from kqueue.policy import Config, HostProfile  # noqa: E402
from kqueue.policy.ratelimit import parse_rate_limit  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402
from sim.model.replay import prepare, simulate  # noqa: E402
from sim.model.theory import poisson_trace  # noqa: E402

#: Seconds added to the allowed live p95 under ``--check`` (a busy 2-core box stalls a worker).
CHECK_SLACK_S = 0.3
#: How long the workers get to come up, and the jobs to finish after the last dispatch, s.
START_TIMEOUT_S, FINISH_TIMEOUT_S = 30.0, 60.0

APP = """
import os, time
from pathlib import Path
from kqueue import App

app = App()
OUT = Path(os.environ["RATE_WAIT_OUT"])


@app.job(name="api", tier="inline", rate_limit=os.environ["RATE_WAIT_LIMIT"])
def api(i, sent):
    with open(OUT / f"starts-{os.getpid()}", "a") as out:
        out.write(f"{i} {time.time() - sent!r}\\n")
"""


def arrivals_s(jobs: int, per_s: float, seed: int) -> np.ndarray:
    """The send times (from 0), the twin's Poisson trace's."""
    trace = poisson_trace(jobs, per_s, 0.001, deterministic=True, seed=seed)
    return trace["submitted_at"].to_numpy() - float(trace["submitted_at"].iloc[0])


def fcfs_waits_s(sent_s: np.ndarray, rate_per_s: float, capacity: float) -> np.ndarray:
    """Each job's wait under a first-come-first-served bucket of ``capacity`` tokens: a job
    starts on a whole token, else when the tokens owed by the jobs before it have come."""
    tokens, last_s, waits = capacity, 0.0, []
    for sent in np.sort(sent_s):
        tokens = min(capacity, tokens + (sent - last_s) * rate_per_s)
        last_s = sent
        waits.append(0.0 if tokens >= 1.0 else (1.0 - tokens) / rate_per_s)
        tokens -= 1.0
    return np.asarray(waits)


def twin_waits_s(sent_s: np.ndarray, rate: str) -> np.ndarray:
    """The twin's waits for the same arrivals (one worker with the whole limit, ideal host)."""
    trace = poisson_trace(len(sent_s), 1.0, 0.001, deterministic=True)
    trace["submitted_at"], trace["job_class"] = sent_s, "api"
    config = Config.from_mapping(
        {"max_concurrent_inline": 100, "jobs": {"api": {"tier": "inline", "rate_limit": rate}}}
    )
    outcome = simulate(prepare(trace), config, HostProfile.ideal()).outcome
    return outcome.started_s - outcome.submitted_s


def live_waits_s(sent_s: np.ndarray, rate: str, workers: int, folder: Path) -> np.ndarray:
    """Run the jobs on ``workers`` live workers; each job's wait (start - sent), seconds."""
    (folder / "rateapp.py").write_text(APP)
    out = folder / "out"
    out.mkdir()
    env = {**os.environ, "RATE_WAIT_OUT": str(out), "RATE_WAIT_LIMIT": rate}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(folder)])
    with RedisServer(folder / "redis") as server:
        args = [sys.executable, "-m", "kqueue", "run", "--app", "rateapp:app"]
        args += ["--backend", server.url, "--pool-size", "0", "--pool-max-size", "0"]
        logs = [open(folder / f"worker-{n}.log", "w") for n in range(workers)]  # noqa: SIM115
        procs = [
            subprocess.Popen(args, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
            for log in logs
        ]
        app = App(server.url)
        try:
            _wait_for(lambda: len(app.backend.worker_statuses()) == workers, START_TIMEOUT_S)
            api = app.job(lambda i, sent: None, name="api")
            began = time.time()
            for i, at_s in enumerate(sent_s):
                time.sleep(max(0.0, began + at_s - time.time()))
                api.dispatch(i, time.time())
            _wait_for(lambda: len(_rows(out)) == len(sent_s), FINISH_TIMEOUT_S)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            for log in logs:
                log.close()
            app.close()
    return np.asarray([wait for _, wait in sorted(_rows(out))])


def _rows(out: Path) -> list[tuple[int, float]]:
    rows = []
    for path in out.glob("starts-*"):
        for line in path.read_text().splitlines():
            i, wait = line.split()
            rows.append((int(i), float(wait)))
    return rows


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s} s")
        time.sleep(0.05)


def _line(name: str, waits: np.ndarray) -> str:
    p50, p95 = np.percentile(waits, [50, 95])
    return f"{name:<8} p50 {p50:6.3f} s  p95 {p95:6.3f} s  max {waits.max():6.3f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--rate", default="2/s", help="the class's rate_limit")
    parser.add_argument("--arrivals", type=float, default=1.2, help="jobs sent a second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--check-ratio", type=float, default=1.5)
    opts = parser.parse_args(argv)
    limit = parse_rate_limit(opts.rate, "--rate")
    sent_s = arrivals_s(opts.jobs, opts.arrivals, opts.seed)
    with tempfile.TemporaryDirectory() as folder:
        live = live_waits_s(sent_s, opts.rate, opts.workers, Path(folder))
    fcfs = fcfs_waits_s(sent_s, limit.rate_per_s, limit.capacity)
    print(f"{opts.jobs} jobs at {opts.arrivals}/s, rate_limit {opts.rate}, {opts.workers} workers")
    print(_line("live", live))
    print(_line("twin", twin_waits_s(sent_s, opts.rate)))
    print(_line("fcfs", fcfs))
    if opts.check:
        allowed_s = opts.check_ratio * float(np.percentile(fcfs, 95)) + CHECK_SLACK_S
        if float(np.percentile(live, 95)) > allowed_s:
            print(f"live p95 above {allowed_s:.3f} s")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
