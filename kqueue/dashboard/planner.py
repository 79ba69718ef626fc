"""The Plan page's twin: ``kqueue simulate`` on the last window of the fleet trace, in a child.

The web server never runs the simulator: ``predict`` writes the window's rows (read from the
backend, as ``kqueue trace export`` would) and the settings to a scratch folder and runs
``python -m kqueue simulate --trace <file> --config <file> --json`` as a separate process, with
a timeout, off the event loop. So the prediction is by construction what ``kqueue simulate``
prints on the exported trace with the same config, and a slow or crashing simulation cannot
stall or take down the dashboard. The what-if form's values become a ``Config`` (validated by
its rules) before anything runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kqueue.errors import ConfigError, KQueueError
from kqueue.ops.fleet_trace import read_fleet_rows, rows_frame
from kqueue.policy.config import Config

#: Longest a twin run may take, seconds.
SIMULATE_TIMEOUT_S = 120.0
#: The settings the what-if form offers, in its order.
WHAT_IF_SETTINGS = (
    "pool_size",
    "pool_max_size",
    "inline_max_duration_s",
    "pooled_max_duration_s",
    "max_concurrent_inline",
    "max_concurrent_isolated",
    "timeout_s",
    "max_memory_mb",
)


class PlanError(KQueueError):
    """Raised when the twin could not run (no trace in the window, the child failed)."""


@dataclass(frozen=True)
class Prediction:
    """What the twin said, with what it ran on."""

    config: Config
    #: The simulator's JSON result.
    result: dict
    rows: int
    window_s: float
    took_s: float


def fleet_config(workers: list[dict], given: Config | None = None) -> Config:
    """The config the fleet runs: ``given``, else the first live worker's published settings."""
    if given is not None:
        return given
    import tomllib

    for worker in workers:
        if worker.get("worker_config_toml"):
            try:
                text = worker["worker_config_toml"]
                return Config.from_mapping(tomllib.loads(text), "worker status")
            except (tomllib.TOMLDecodeError, ConfigError):
                continue
    return Config()


def what_if(base: Config, form: Mapping[str, str]) -> Config:
    """``base`` with the what-if form's settings (blank fields keep ``base``'s value).

    Raises:
        ConfigError: a value is not a number or breaks its setting's rule (names the setting).
    """
    changes = {}
    for name in WHAT_IF_SETTINGS:
        text = str(form.get(name, "")).strip()
        if not text:
            continue
        try:
            changes[name] = float(text)  # Config's rules check it (an integer where one is due)
        except ValueError:
            raise ConfigError(f"what-if: {name} = {text[:40]!r} is not a number") from None
    return base.replace(**changes)


def toml_from_query(base: Config, query: Mapping[str, str]) -> str:
    """The ``kqueue.toml`` of ``base`` with the query's what-if settings (the download link)."""
    return what_if(base, query).to_toml()


async def predict(backend, config: Config, window_s: float, host_profile: str | None) -> Prediction:
    """Run the twin on the last ``window_s`` of the fleet trace with ``config``.

    Raises:
        PlanError: no rows in the window, or the simulation failed or timed out.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kqueue-plan-") as scratch:
        folder = Path(scratch)
        rows = await asyncio.to_thread(_write_inputs, backend, config, window_s, folder)
        trace, toml = str(folder / "trace.csv"), str(folder / "kqueue.toml")
        command = [sys.executable, "-m", "kqueue", "simulate", "--json", "--trace", trace]
        command += ["--config", toml]
        if host_profile:
            command += ["--host", host_profile]
        result = await _run(command)
    return Prediction(config, result, rows, window_s, time.monotonic() - started)


def _write_inputs(backend, config: Config, window_s: float, folder: Path) -> int:
    from kqueue.policy import write_trace

    rows, _ = read_fleet_rows(backend, time.time() - window_s)
    if not rows:
        raise PlanError(
            f"the fleet trace has no rows in the last {window_s:g} s: run workers "
            "(trace_keep_rows > 0, the default) and come back"
        )
    write_trace(rows_frame(rows), folder / "trace.csv")
    (folder / "kqueue.toml").write_text(config.to_toml())
    return len(rows)


async def _run(command: list[str]) -> dict:
    child = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), SIMULATE_TIMEOUT_S)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise PlanError(f"the simulation took longer than {SIMULATE_TIMEOUT_S:g} s") from None
    if child.returncode != 0:
        raise PlanError(f"the simulation failed: {err.decode(errors='replace')[-500:]}")
    return json.loads(out)


def live_figures(window, peak_memory_mb: float) -> dict:
    """The live numbers the prediction is compared with: throughput, p95 wait per tier, memory."""
    waits = window.waits("tier")
    return {
        "throughput_per_min": window.throughput_per_min(),
        "p95_wait_s": {tier: w["p95_wait_s"] for tier, w in waits.items()},
        "peak_memory_mb": peak_memory_mb or None,
    }


def predicted_figures(result: dict) -> dict:
    """The same figures from the simulator's JSON result."""
    tiers = result.get("tiers") or {}
    return {
        "throughput_per_min": result.get("throughput_per_min"),
        "p95_wait_s": {
            tier: info.get("p95_wait_s") for tier, info in tiers.items() if info.get("jobs")
        },
        "peak_memory_mb": result.get("peak_memory_mb"),
    }


def finite(value) -> float | None:
    """A number for display, or None (NaN, inf, missing)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None
