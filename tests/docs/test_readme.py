"""The README stays true: its demo command and its example run as written."""

from __future__ import annotations

import re
import shlex

from kqueue.policy import read_trace
from tests.conftest import ROOT, kqueue_env, run_kqueue


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_demo_command_finishes_the_prototypes_check_and_empties_the_queue(tmp_path):
    result = run_kqueue(tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    assert re.search(r"23 jobs in [0-9.]+ s", result.stdout), result.stdout
    # the three 3-second jobs ran together, not one after another: each started before any
    # ended (their own trace rows, so a slow start-up of the pool's processes does not count)
    trace = read_trace(tmp_path / "kqueue-demo-trace.csv")
    reports = trace[trace.job_class == "demo.report"]
    assert len(reports) == 3 and set(reports.status) == {"ok"}
    assert reports.started_at.max() < reports.finished_at.min(), reports
    assert "left in the queue: 0" in result.stdout
    assert (tmp_path / "kqueue.db").exists()


def test_the_example_dispatches_runs_and_lists_no_dead_letters(tmp_path):
    # Given tasks.py exactly as the README shows it
    [example] = [b for b in readme_blocks("python") if b.startswith("# tasks.py")]
    (tmp_path / "tasks.py").write_text(example)
    [commands] = [b for b in readme_blocks("bash") if b.startswith("python tasks.py")]
    # When each README command runs in that folder
    import subprocess
    import sys

    outputs = []
    for line in commands.strip().splitlines():
        argv = shlex.split(line.split("#")[0])
        if argv[0] == "kqueue":
            result = run_kqueue(tmp_path, *argv[1:])
        else:
            argv[0] = sys.executable
            result = subprocess.run(
                argv,
                cwd=tmp_path,
                env=kqueue_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert result.returncode == 0, (line, result.stderr)
        outputs.append(result.stdout)
    # Then both jobs ran in their tiers and nothing was dead-lettered
    trace = read_trace(tmp_path / "jobs.csv")
    assert dict(zip(trace.job_class, trace.tier, strict=True)) == {
        "tasks.send_mail": "inline",
        "tasks.render_report": "pool",
    }
    assert set(trace.status) == {"ok"}
    assert "no dead-lettered jobs" in outputs[-1]


def test_the_set_up_is_two_commands_and_the_second_is_what_ci_runs():
    [setup] = [b for b in readme_blocks("bash") if b.startswith("python3 -m venv")]
    commands = [line.split("#")[0].strip() for line in setup.strip().splitlines()]
    assert len(commands) == 2, commands
    install, tests = commands
    assert "pip install -e '.[dev]'" in install and install.endswith("kqueue demo")
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert f"\n{tests}\n" in ci_script, (tests, "is not the command .ci/run runs")
