"""docs/guide/dashboard.md stays true: its commands run as written on a fleet's backend."""

from __future__ import annotations

import re
import shlex
import time

from tests.conftest import ROOT, run_kqueue
from tests.support.dashfleet import Fleet, http

GUIDE = ROOT / "docs" / "guide" / "dashboard.md"


def _blocks() -> list[list[str]]:
    found = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [shlex.split(line) for block in found for line in block.strip().splitlines()]


def test_the_guides_commands_run_on_a_fleets_backend(tmp_path):
    # Given a fleet that ran jobs on sqlite:///kqueue.db in this folder
    fleet = Fleet(tmp_path)
    try:
        fleet.start_worker()
        fleet.dispatch("mail.send", 20)
        deadline = time.monotonic() + 60
        while len(fleet.backend.read_trace().rows) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        dashboard, *commands = _blocks()
        # When the dashboard command runs (on a free port: 8000 may be taken here)
        assert dashboard[:4] == ["kqueue", "dashboard", "--backend", "sqlite:///kqueue.db"]
        fleet.start_dashboard(*dashboard[4:])
        # Then it answers, and the export and simulate commands work as written
        status, body = http("GET", fleet.base + "/api/overview")
        assert status == 200 and b'"throughput_per_min"' in body
        for command in commands:
            done = run_kqueue(tmp_path, *command[1:], timeout=110)
            assert done.returncode == 0, (command, done.stderr)
        assert (tmp_path / "jobs.csv").read_text().count("\n") >= 21
    finally:
        fleet.close()
