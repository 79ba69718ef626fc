"""docs/guide/scaling.md stays true: each of its Python blocks runs and checks itself."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "guide" / "scaling.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guide_has_its_two_examples():
    assert len(_blocks()) == 2


@pytest.mark.parametrize("index", [0, 1])
def test_each_example_runs(index):
    exec(compile(_blocks()[index], f"scaling.md block {index}", "exec"), {})
