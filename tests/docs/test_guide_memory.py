"""docs/guide/memory.md stays true: its config loads, its example runs, its CLI option exists."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from kqueue.policy import Config
from tests.conftest import ROOT, kqueue_env, run_kqueue

GUIDE = ROOT / "docs" / "guide" / "memory.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guides_config_loads_and_its_example_keeps_the_budget(tmp_path):
    [toml] = _blocks("toml")
    config = Config.from_mapping(tomllib.loads(toml), source="memory.md")
    assert config.memory_budget_mb == 1500
    example = _blocks("python")[0]
    (tmp_path / "budget_example.py").write_text(example)
    done = subprocess.run([sys.executable, "budget_example.py"], cwd=tmp_path, text=True,
                          capture_output=True, env=kqueue_env(tmp_path), timeout=110)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "budget 1500: peak" in done.stdout


def test_the_guides_budget_search_runs_and_its_config_reproduces_its_numbers(tmp_path):
    # Given the guide's second example: tune, then search the budget
    example = _blocks("python")[1]
    (tmp_path / "search_example.py").write_text(example)
    # When it runs, Then its own checks hold and it prints the budget with the waits it costs
    done = subprocess.run([sys.executable, "search_example.py"], cwd=tmp_path, text=True,
                          capture_output=True, env=kqueue_env(tmp_path), timeout=110)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "MB guaranteed" in done.stdout and "pool p95 wait s" in done.stdout


def test_the_cli_option_the_guide_names_exists(tmp_path):
    done = run_kqueue(tmp_path, "run", "--help")
    assert "--memory-budget-mb" in done.stdout and "--max-memory-mb" in done.stdout
    tuned = run_kqueue(tmp_path, "tune", "--help")
    assert "--no-search-budget" in tuned.stdout
