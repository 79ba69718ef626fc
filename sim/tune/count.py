"""The host count search as a pure rule over a pass/fail oracle (issue 14).

``least_count(works, start, searches)`` finds a least passing host count without assuming
that passing grows with the count: the shares of a split are random, so 20 hosts can pass where
21 fail. The rule: from ``start`` (the bounds' count) double until a count passes, bisect between
the last failing and the first passing count (once a count has passed, the bisection runs to
the end whatever tries are left: it brackets the answer, so its last step is the count below),
then check the count below the answer and step down while that passes. Whatever the oracle does,
the result is *monotone-safe*:

- the answer is a count the oracle passed (the tuner's oracle checks every share of every seed,
  so the answer is verified, not inferred from a neighbour);
- the count below the answer was tried and failed, unless the oracle could not try it
  (returned None): the search never runs out of tries there, so "what fails one host fewer"
  always has an answer.

What it does not promise is the least passing count overall: a count below a failing one may
pass. ``searches`` bounds the doubling (before anything passed); the bisection then costs about
log2 of its bracket, and the step-down one try per count it passes and one that fails.
``works(k)`` returns True (passes), False (fails) or None (cannot be tried, e.g. its shares are
too small to simulate): None stops the search where it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CountSearch:
    """What the count search found: ``answer`` (None: nothing passed), the largest failing
    count below it (``low``), and every count tried with its verdict, in order."""

    answer: int | None
    low: int
    results: dict[int, bool] = field(default_factory=dict)

    @property
    def below_checked(self) -> bool:
        """True when the count below the answer was tried (and so failed)."""
        return self.answer is not None and (self.answer - 1) in self.results


def least_count(
    works: Callable[[int], bool | None],
    start: int,
    searches: int,
    most: int | None = None,
) -> CountSearch:
    """The doubling, bisection and step-down of the module docstring.

    Args:
        works: the oracle; called at most once per count.
        start: the first count (the bounds' count, at least 1).
        searches: counts tried by the doubling (the bisection, once a count passed, always
            runs to a bracket of one).
        most: the largest count the doubling may try (the tuner's: each host keeps enough jobs
            to simulate); a doubling past it tries ``most`` itself, then stops.
    """
    results: dict[int, bool] = {}

    def ask(hosts: int, allowed: float) -> bool | None:
        if hosts in results:
            return results[hosts]
        if len(results) >= allowed:
            return None
        ok = works(hosts)
        if ok is not None:
            results[hosts] = bool(ok)
        return ok

    k, low, high = start, start - 1, None
    while high is None:
        ok = ask(k, searches)
        if ok is None:
            break
        low, high = (low, k) if ok else (k, None)
        if most is not None and k >= most:
            break
        k = k * 2 if most is None else min(k * 2, most)
    while high is not None and high - low > 1:
        middle = (low + high) // 2
        ok = ask(middle, math.inf)  # bracketed: the last step is the count below the answer
        if ok is None:
            break
        low, high = (low, middle) if ok else (middle, high)
    if high is not None:
        high, low = _step_down(high, low, ask)
    return CountSearch(high, low, results)


def _step_down(high, low, ask) -> tuple[int, int]:
    """Try the count below ``high`` and step down while it passes (each pass is a better answer,
    checked, so no try limit); returns the new (answer, largest failing count below it)."""
    while high - 1 >= 1:
        ok = ask(high - 1, math.inf)
        if ok is None:
            return high, low
        if not ok:
            return high, high - 1
        high = high - 1
    return high, low
