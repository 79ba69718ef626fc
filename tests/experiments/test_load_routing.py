"""experiments/load_routing.py: helps on the I/O burst, never triggers on the steady load."""

from __future__ import annotations

from tests.conftest import run_experiment


def test_load_routing_experiment_prints_its_verdicts():
    done = run_experiment("load_routing.py")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "helps on the I/O burst: True; does not trigger on the steady load: True" in done.stdout
