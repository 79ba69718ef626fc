"""The host count search is monotone-safe whatever the pass/fail oracle does (issue 14)."""

from __future__ import annotations

import random

import pytest

from sim.tune.count import least_count


def _oracle(table: dict[int, bool | None], default: bool = True):
    asked: list[int] = []

    def works(hosts: int) -> bool | None:
        assert hosts not in asked, f"{hosts} asked twice"
        asked.append(hosts)
        return table.get(hosts, default if hosts >= 1 else False)

    return works, asked


def test_a_monotone_oracle_gives_the_least_passing_count():
    works, asked = _oracle({k: k >= 13 for k in range(1, 100)})
    found = least_count(works, 8, searches=8)
    assert found.answer == 13 and found.below_checked and found.results[12] is False
    assert asked[:2] == [8, 16]


def test_a_count_that_passes_below_a_failing_one_is_not_mistaken_for_the_answer():
    # Given a split whose random shares make 12 pass, 11 fail, 10 pass and 9 fail
    table = {8: False, 16: True, 12: True, 10: True, 9: False, 11: False}
    works, _ = _oracle(table)
    found = least_count(works, 8, searches=8)
    # Then the answer passed, and the count below it was tried and failed
    assert found.answer == 10 and found.results[10] and found.results[9] is False
    assert found.below_checked


def test_the_step_down_goes_on_while_the_count_below_passes():
    # bisection lands on 12 (11 was never asked), but 11 and 10 pass, 9 fails
    table = {8: False, 16: True, 12: True, 10: False, 11: True}
    works, asked = _oracle(table)
    found = least_count(works, 8, searches=4)
    assert asked == [8, 16, 12, 10, 11]
    assert found.answer == 11 and found.results[10] is False


def test_a_count_that_cannot_be_tried_stops_the_search_with_no_answer():
    works, _ = _oracle({4: False, 8: None})
    found = least_count(works, 4, searches=8)
    assert found.answer is None and found.low == 4 and not found.below_checked


def test_the_count_below_is_checked_even_when_the_tries_are_spent():
    works, asked = _oracle({k: k >= 7 for k in range(1, 64)})
    found = least_count(works, 2, searches=3)
    # 2, 4 fail, 8 passes: the doubling's tries are spent, the bisection still runs to the end
    assert asked == [2, 4, 8, 6, 7] and found.answer == 7
    assert found.below_checked and found.results[6] is False  # what fails at N-1 is known


def test_the_step_down_has_no_try_limit_while_it_passes():
    # Given a first count that passes, and every count down to 4 passing too
    works, asked = _oracle({k: k >= 4 for k in range(1, 64)})
    found = least_count(works, 8, searches=1)
    # Then the step-down goes on past the doubling's one try until a count fails
    assert asked == [8, 7, 6, 5, 4, 3] and found.answer == 4 and found.below_checked


@pytest.mark.parametrize("seed", range(200))
def test_whatever_the_oracle_the_answer_passed_and_the_count_below_failed_or_is_unchecked(seed):
    rng = random.Random(seed)
    table = {k: rng.random() < 0.2 + 0.6 * (k > 10) for k in range(1, 200)}
    works, _ = _oracle(table)
    found = least_count(works, rng.randint(2, 9), searches=8)
    if found.answer is None:
        assert all(not ok for ok in found.results.values())
        return
    assert table[found.answer] and found.results[found.answer]
    # And the count below was always checked, and failed (no oracle here says None)
    assert found.results.get(found.answer - 1) is False and found.below_checked
    assert found.low == found.answer - 1


def test_the_doubling_tries_the_largest_allowed_count_before_it_gives_up():
    # Given counts that fail up to 300 and a cap of 364 (shares too small above it)
    works, asked = _oracle({k: k >= 330 for k in range(1, 1000)})
    found = least_count(works, 210, searches=8, most=364)
    # Then 364 is tried instead of 420, passes, and the bisection finds 330
    assert asked[:2] == [210, 364] and 420 not in asked
    assert found.answer == 330 and found.below_checked
    # And at the cap itself a failing count ends the search with no answer
    works, asked = _oracle({364: False, 210: False})
    assert least_count(works, 210, searches=8, most=364).answer is None and asked == [210, 364]
