"""The tuner's report reads right: "no jobs" on empty panels, SLO lines, time units, memory as
steps, the Pareto front clipped with the points it leaves out counted, titles per host."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare, simulate
from sim.tune.evaluate import Evaluation, Problem
from sim.tune.plots import (
    NO_JOBS,
    hosts_figure,
    memory_figure,
    pareto_figure,
    pareto_view,
    share_label,
    waits_figure,
)
from sim.tune.report import figures, pareto_front, write_report
from sim.tune.search import tune
from sim.tune.slo import DEFAULT_SLOS, parse_slos

HOST = HostProfile(cores=4)


@pytest.fixture(scope="module")
def no_pool_jobs():
    """Fast jobs (inline) and two-minute jobs (isolated) over an hour: the pool group is empty."""
    rows = [(t * 20.0, "fast", 0.05) for t in range(180)]
    rows += [(t * 60.0 + 7.0, "long", 120.0) for t in range(60)]
    frame = pd.DataFrame(rows, columns=["submitted_at", "job_class", "duration_s"])
    return prepare(frame)


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_an_empty_group_gets_a_no_jobs_panel_and_its_slo_is_not_checked(no_pool_jobs):
    runs = [("default", simulate(no_pool_jobs, Config(), HOST))]
    fig = waits_figure(runs, Config(), DEFAULT_SLOS, share_label(1))
    inline, pool, isolated = fig.axes
    assert NO_JOBS in _texts(pool) and "pool.p95_wait <= 10 s: not checked" in _texts(pool)
    assert not pool.lines
    # And the groups with jobs draw their waits and their SLO line at the target
    for ax, target_s in ((inline, 1.0), (isolated, 60.0)):
        assert NO_JOBS not in _texts(ax)
        assert any(list(line.get_xdata()) == [target_s, target_s] for line in ax.lines)
    assert "per host (one host, whole trace)" in fig.get_suptitle()


def test_an_slo_on_all_jobs_gets_its_own_panel(no_pool_jobs):
    runs = [("default", simulate(no_pool_jobs, Config(), HOST))]
    fig = waits_figure(runs, Config(), parse_slos(["all.p99_wait=5s"]), share_label(1))
    assert [ax.get_title() for ax in fig.axes][-1] == "all jobs' waits"
    assert any(list(line.get_ydata()) == [0.99, 0.99] for line in fig.axes[-1].lines)


def test_the_report_says_per_host_and_no_jobs_where_a_group_is_empty(tmp_path, no_pool_jobs):
    # Given the tuner's answer on a trace whose pool group is empty
    problem = Problem(DEFAULT_SLOS, 4096.0, HOST, Config(), 0)
    found = tune(no_pool_jobs, problem, processes=1)
    chosen = simulate(found.share, found.config, HOST)
    default = simulate(found.share, problem.base, HOST)
    # When the report is written
    out = write_report(tmp_path / "r", found, chosen, default, "jobs.csv")
    summary = (out / "summary.md").read_text()
    # Then the empty group's SLO is "not checked", not a +100% margin, and the rates show
    assert "| margin pool.p95_wait <= 10 s | no jobs (not checked) | no jobs (not checked) |" in (
        summary
    )
    assert "every number below is per host, on the whole trace (one host)" in summary
    assert "240 jobs, offered 4.01/min, completed 3.9" in summary  # 239 gaps over 3,580 s
    for name, figure in figures(found, chosen, default).items():
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        titles = [figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)]
        assert any("per host" in title for title in titles), name


def test_memory_is_drawn_as_steps_in_the_unit_of_the_span(no_pool_jobs):
    result = simulate(no_pool_jobs, Config(), HOST)
    fig = memory_figure([("default", result)], 4096.0, share_label(3, seed=1))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time from trace start (min)"  # an hour of arrivals
    assert ax.lines[0].get_drawstyle() == "steps-post"
    assert ax.get_ylabel().replace("\n", " ") == (
        "memory of the worker and its processes (MB), per host"
    )
    assert ax.get_title() == "Memory over time, per host (host 1 of 3's share, seed 1)"
    # And a budget far above every curve is named in the legend, not drawn
    far = memory_figure([("default", result)], 1e6, share_label(1)).axes[0]
    assert not [line for line in far.lines if line.get_linestyle() == "--"]
    assert "budget 1,000,000 MB: off the scale" in [t.get_text() for t in far.get_legend().texts]


def _evaluation(peak_mb: float, margin: float, stable: bool = True, budget_mb=math.inf):
    feasible = stable and margin >= 0 and peak_mb <= budget_mb
    return Evaluation(Config(pool_size=int(peak_mb) % 20), 1000, stable, peak_mb, 60.0,
                      (("pool.p95_wait", margin),), feasible)  # fmt: skip


def test_the_pareto_plot_is_clipped_to_the_front_and_counts_what_it_leaves_out():
    # Given a front from 900 MB (missing its SLO by 6,000%) to 1,400 MB, runs near it, one
    # unstable run, and two runs no planner would pick: ten times the memory for the same
    # margin, and a margin worse than the whole front's
    near = [_evaluation(900, -60.0), _evaluation(1000, -0.6), _evaluation(1200, 0.1),
            _evaluation(1400, 0.5), _evaluation(1300, 0.05),
            _evaluation(1100, -0.2, stable=False)]  # fmt: skip
    outliers = [_evaluation(14_000, 0.5), _evaluation(1300, -80.0)]
    tried = near + outliers
    front = pareto_front(tried)
    chosen = near[2]
    # When the view is chosen
    view = pareto_view(tried, front, chosen)
    # Then it spans the whole front (its worst margin on a log scale) and the memory around it,
    # and the two outliers are off-scale and counted
    assert near[0] in front and view.margin == (-60.0, 1.0)
    assert view.memory_mb[0] <= 900 and 1400 <= view.memory_mb[1] < 14_000
    assert all(view.shows(e) for e in near) and view.off_scale == 2
    fig = pareto_figure(tried, front, chosen, 1500.0, share_label(29, seed=2))
    ax = fig.axes[0]
    assert "2 of 8 points off-scale" in _texts(ax)
    assert ax.get_yscale() == "symlog" and -100 < ax.get_ylim()[0] < -60
    assert ax.get_xlim()[1] < 14_000
    # And infeasible runs are marked apart from the feasible ones
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert "feasible" in labels and "infeasible: unstable (a backlog grows)" in labels
    assert "infeasible: misses an SLO or the budget" in labels and "budget 1,500 MB" in labels
    assert "per host (host 1 of 29's share, seed 2)" in ax.get_title()


def test_the_margin_axis_reaches_minus_100_percent_even_when_the_front_does_not():
    chosen = _evaluation(500, 0.3)
    view = pareto_view([chosen, _evaluation(400, -9.0, stable=False)], [chosen], chosen)
    assert view.margin == (-1.0, 1.0) and view.off_scale == 1


def test_the_hosts_figure_draws_every_share_and_empty_groups(no_pool_jobs):
    per_host = [simulate(no_pool_jobs, Config(), HOST)] * 2
    fig = hosts_figure(per_host, Config(), DEFAULT_SLOS, 4096.0, seed=0)
    inline, pool, isolated, memory = fig.axes
    assert "no jobs on any host" in _texts(pool)
    assert len(inline.patches) == 2 and len(memory.patches) == 2
    assert [line.get_ydata()[0] for line in isolated.lines] == [60.0]
    assert "Every host's share, seed 0: 2 hosts" in fig.get_suptitle()
