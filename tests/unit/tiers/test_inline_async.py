"""The inline tier's own measures: an async job's timeout, and the memory of inline jobs."""

from __future__ import annotations

import asyncio
import time

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.tiers import inline
from kqueue.tiers.base import Invocation
from kqueue.tiers.inline import InlineRunner
from kqueue.tiers.procs import own_memory_mb, peak_rss_mb


def _settings(timeout_s: float) -> JobSettings:
    return JobSettings(Tier.INLINE, None, timeout_s, 4096.0, 1)


def _runner(tmp_path) -> tuple[App, InlineRunner]:
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    return app, InlineRunner(app, Config(max_concurrent_inline=4))


def _mb_past_the_peak(extra_mb: int) -> int:
    """How much to hold so that this process's peak resident memory grows by ``extra_mb``."""
    return int(peak_rss_mb() - own_memory_mb()[1]) + extra_mb


def test_an_async_job_past_its_timeout_is_cancelled_and_recorded_as_a_timeout(tmp_path):
    # Given an async job that would sleep 30 s, with a timeout of 0.2 s, and one that returns
    app, runner = _runner(tmp_path)
    cancelled = []

    async def stuck() -> None:
        try:
            await asyncio.sleep(30.0)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    slow, fast = app.job(stuck, name="stuck"), app.job(quick, name="quick")

    async def scenario() -> list:
        return await asyncio.gather(
            runner.run(Invocation("j1", slow, [], {}, _settings(0.2), 1)),
            runner.run(Invocation("j2", fast, [], {}, _settings(0.2), 1)),
        )

    # When both run
    timed_out, ok = asyncio.run(scenario())
    # Then the slow one ends as a timeout (its coroutine saw the cancellation) long before its
    # sleep would have, the quick one returns its value, and no job is left counted as running
    assert timed_out.status is Status.TIMEOUT
    assert "timed out after 0.2 s" in timed_out.error
    assert cancelled == [True]
    assert timed_out.finished_at - timed_out.started_at < 10.0
    assert ok.status is Status.OK and ok.result == "7"  # the JSON of its value
    assert runner.running() == 0


def test_inline_jobs_report_their_own_growth_of_the_peak(tmp_path):
    # Given a sync and an async job that each hold memory past the process's peak, and no-ops
    app, runner = _runner(tmp_path)

    def hold(mb: int) -> int:
        return len(b"x" * (mb * 1024 * 1024))

    async def ahold(mb: int) -> int:
        block = b"x" * (mb * 1024 * 1024)
        await asyncio.sleep(0)
        return len(block)

    sync_hold, async_hold = app.job(hold, name="hold"), app.job(ahold, name="ahold")

    async def run(job, mb: int):
        return await runner.run(Invocation("j", job, [mb], {}, _settings(60.0), 1))

    async def scenario() -> list:
        big = await run(sync_hold, _mb_past_the_peak(60))
        small = await run(sync_hold, 0)
        time.sleep(2 * inline.PEAK_MAX_AGE_S)  # the next start reads the peak afresh
        abig = await run(async_hold, _mb_past_the_peak(60))
        asmall = await run(async_hold, 0)
        await runner.stop(0.0)
        return [big, small, abig, asmall]

    # When they run one after another
    big, small, abig, asmall = asyncio.run(scenario())
    # Then each big one reports at least most of its growth and the no-op after it none of it
    assert big.memory_mb >= 50 and abig.memory_mb >= 50
    assert small.memory_mb < 5 and asmall.memory_mb < 5


def test_a_start_reuses_a_recent_reading_of_the_peak_and_reads_an_old_one_again():
    # Given a watch whose readings serve starts for an hour
    watch = inline._PeakWatch(max_age_s=3600.0)
    first = watch.fresh()
    block = b"x" * (_mb_past_the_peak(40) * 1024 * 1024)
    # When a start comes while the reading is recent, then once it counts as old
    reused = watch.recent()
    watch._max_age_s = 0.0
    reread = watch.recent()
    # Then the first start took the kept reading (never above the peak at its start), the later
    # one a new reading that includes the growth
    assert reused == first
    assert reread >= first + 30
    assert len(block) > 0
