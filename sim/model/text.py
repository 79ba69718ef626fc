"""A plain-text rendering of a ``SimResult`` for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.model.report import SimResult, TierStats

_COLUMNS = (
    ("jobs", "jobs", "{:d}"),
    ("jobs/min", "throughput_per_min", "{:.1f}"),
    ("wait p50", "p50_wait_s", "{:.3f}"),
    ("p95", "p95_wait_s", "{:.3f}"),
    ("p99", "p99_wait_s", "{:.3f}"),
    ("max", "max_wait_s", "{:.3f}"),
    ("latency p95", "p95_latency_s", "{:.3f}"),
    ("util", "utilisation", "{:.0%}"),
    ("peak MB", "peak_memory_mb", "{:.0f}"),
    ("spawns", "spawns", "{:d}"),
    ("recycles", "recycles", "{:d}"),
)


def _cells(stats: TierStats) -> list[str]:
    cells = []
    for _, key, fmt in _COLUMNS:
        value = getattr(stats, key)
        cells.append("-" if value is None else fmt.format(value))
    return cells


def render(result: SimResult) -> str:
    """The result as a table of tiers plus a few summary lines (times in s, memory in MB)."""
    rows = [["tier"] + [title for title, _, _ in _COLUMNS]]
    for name, stats in result.tiers.items():
        rows.append([name] + _cells(stats))
    rows.append(["all"] + _cells(result.overall))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    verdict = "stable" if result.stable else "UNSTABLE"
    lines += [
        "",
        f"jobs {result.jobs}, finished {result.finished}, never started {result.never_started}; "
        f"arrivals {result.arrival_rate_per_min:.1f}/min, "
        f"throughput {result.throughput_per_min:.1f}/min",
        f"{verdict}: backlog {result.backlog_start} at mid-trace, "
        f"{result.backlog_end} at the last arrival",
        f"peak memory {result.peak_memory_mb:.0f} MB at t={result.peak_memory_at_s:.1f} s; "
        f"pool peak {result.pool_peak_processes} processes"
        + (f"; CPU {result.cpu_utilisation:.0%}" if result.cpu_utilisation is not None else ""),
        f"defaults used: cpu_s on {result.default_cpu_rows} rows, memory_mb on "
        f"{result.default_memory_rows} rows",
        f"simulated in {result.wall_s:.2f} s ({result.jobs_per_wall_s:,.0f} jobs per wall second)",
    ]
    return "\n".join(lines)
