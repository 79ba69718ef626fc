"""The search for a config on one trace (the whole trace, or one host's share).

``search_trace`` runs successive halving over the candidates (``sim.tune.candidates``): every
candidate on the trace's densest window of ``SCREEN_JOBS[0]`` jobs, the best third on a larger
window, the best ``FINALISTS`` on the whole trace; then refinement on the whole trace steps each
capacity down (or, while nothing is feasible, up) and tries pool recycling while the selection
rule (``sim.tune.evaluate.select``) picks something new.
"""

from __future__ import annotations

import math

from sim.tune.candidates import candidates, neighbours
from sim.tune.evaluate import Evaluation, Evaluator, Problem, select
from sim.tune.space import TraceProfile

#: Jobs in the first screening window, and in the second (successive halving).
SCREEN_JOBS = (5_000, 20_000)

#: Candidates kept to the whole trace, and refinement rounds on it.
FINALISTS = 3

REFINE_ROUNDS = 5

#: Refinement rounds while nothing is feasible (each grows or shrinks a capacity one step; on
#: HPC2N at its own rate, five such rounds on a failing 2-host share took as long as the rest).
REFINE_ROUNDS_INFEASIBLE = 2


def search_trace(prepared, trace, problem, processes, progress):
    """Successive halving then refinement on one trace; returns (best, tried, trace, counts)."""
    configs = candidates(trace, problem)
    n = len(prepared.jobs)
    sizes = [size for size in SCREEN_JOBS if size < n] + [n]
    with Evaluator(prepared, sizes, problem, processes, progress) as evaluator:
        alive = configs
        for stage, size in enumerate(sizes, start=1):
            ranked = evaluator.run(size, alive, f"stage {stage}/{len(sizes)}")
            if size == n:
                break
            keep = (
                max(FINALISTS, math.ceil(len(alive) / 3)) if stage < len(sizes) - 1 else FINALISTS
            )
            order = sorted(
                range(len(alive)), key=lambda i: (ranked[i].rank(problem.memory_budget_mb), i)
            )
            alive = [alive[i] for i in order[:keep]]  # fmt: skip
        best = _refine(evaluator, trace, problem)
        tried = tuple(evaluator.on_full_trace())
        counts = (len(configs), len(evaluator.seen))
    return best, tried, prepared, counts


def _refine(evaluator: Evaluator, trace: TraceProfile, problem: Problem) -> Evaluation:
    """Step capacities from the current best while the selection rule picks something new."""
    budget = problem.memory_budget_mb
    best = select(evaluator.on_full_trace(), budget)
    for round_ in range(1, REFINE_ROUNDS + 1):
        if not best.feasible and round_ > REFINE_ROUNDS_INFEASIBLE:
            break  # a count this far off fails whatever a step does; the next count is tried
        moves = neighbours(best.config, best.feasible, trace, problem)
        evaluator.run(evaluator.full, moves, f"refine {round_}/{REFINE_ROUNDS}")
        chosen = select(evaluator.on_full_trace(), budget)
        if chosen == best:
            break
        best = chosen
    return best
