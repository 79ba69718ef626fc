"""docs/guide/planning-report.md stays true: its commands and its example run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from tests.conftest import ROOT, kqueue_env, run_kqueue

GUIDE = ROOT / "docs" / "guide" / "planning-report.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guides_commands_and_example_write_the_report_it_describes(tmp_path):
    # Given the guide's commands, run as written
    [commands] = _blocks("bash")
    for line in commands.strip().splitlines():
        done = run_kqueue(tmp_path, *shlex.split(line)[1:], timeout=110)
        assert done.returncode == 0, (line, done.stderr)
    # Then the report says per host and whose share, with its figures
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "every number below is per host, on host 1 of " in summary
    assert "completed" in summary and "over the arrival window" in summary
    assert "What sets the count: at " in summary and "- SLO rule: the defaults" in summary
    assert "- Limits (`timeout_s`, `max_memory_mb`): set per class" in summary
    assert "## Spread over seeds and shares" in summary
    assert "targets (SLOs: inline.p95_wait <= 1 s" in done.stdout  # the simulate line's verdict
    for name in ("pareto", "memory", "waits"):
        assert (tmp_path / "report" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # And the example adds every host's share
    [example] = _blocks("python")
    (tmp_path / "report_hosts.py").write_text(example)
    done = subprocess.run([sys.executable, "report_hosts.py"], cwd=tmp_path, text=True,
                          capture_output=True, env=kqueue_env(tmp_path), timeout=110)  # fmt: skip
    assert done.returncode == 0, done.stderr
    hosts = int(done.stdout.split()[0])
    assert hosts >= 2
    hosts_summary = (tmp_path / "report-hosts" / "summary.md").read_text()
    assert "## Every host's share, seed 0" in hosts_summary
    assert all(f"\n| {host} | " in hosts_summary for host in range(1, hosts + 1))
    assert (tmp_path / "report-hosts" / "hosts.png").read_bytes()[:4] == b"\x89PNG"
