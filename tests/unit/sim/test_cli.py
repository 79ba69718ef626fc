"""The simulator's CLI end to end: synth -> simulate --json -> parse; errors; determinism."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kqueue.policy import read_trace
from sim.__main__ import main
from tests.conftest import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )


def test_synth_then_simulate_json_is_clean_and_complete(tmp_path):
    # Given a synthetic prototype-mix trace
    trace = tmp_path / "jobs.csv"
    made = _run("trace", "synth", "--out", str(trace), "--jobs", "3000", "--seed", "7")
    assert made.returncode == 0, made.stderr
    # When it is simulated with --json (and progress forced on, which must go to stderr)
    out = tmp_path / "sim.csv"
    ran = _run("simulate", "--trace", str(trace), "--cores", "8", "--json", "--progress",
               "--trace-out", str(out))  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    # Then stdout is exactly one JSON document with the promised keys
    report = json.loads(ran.stdout)
    assert report["stable"] in (True, False)
    assert report["throughput_per_min"] > 0
    assert report["peak_memory_mb"] > 0
    for tier in ("inline", "pool", "isolated"):
        assert set(report["tiers"][tier]) >= {
            "jobs", "p50_wait_s", "p95_wait_s", "p99_wait_s", "p95_latency_s"
        }  # fmt: skip
    assert sum(report["tiers"][t]["jobs"] for t in ("inline", "pool", "isolated")) == 3000
    assert "simulating" in ran.stderr
    # And the simulated trace reads back with the runtime's reader
    assert len(read_trace(out)) == 3000


def test_same_inputs_and_seed_give_the_same_json(tmp_path):
    args = ["simulate", "--rate", "600/min", "--duration", "2m", "--seed", "3", "--json"]
    first, second = _run(*args), _run(*args)
    assert first.returncode == 0, first.stderr
    strip = lambda text: {k: v for k, v in json.loads(text).items() if "wall" not in k}  # noqa: E731
    assert strip(first.stdout) == strip(second.stdout)
    other = _run(*args[:-2], "4", "--json")
    assert strip(other.stdout) != strip(first.stdout)


def test_bad_trace_value_names_line_and_column(tmp_path, capsys):
    trace = tmp_path / "bad.csv"
    trace.write_text("submitted_at,job_class,duration_s\n0,a,1\n1,a,soon\n")
    code = main(["simulate", "--trace", str(trace)])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 3" in err and "column 3" in err and "duration_s" in err


def test_missing_required_column_is_a_clear_error(tmp_path, capsys):
    trace = tmp_path / "bad.csv"
    trace.write_text("submitted_at,job_class\n0,a\n")
    assert main(["simulate", "--trace", str(trace)]) == 2
    assert "duration_s" in capsys.readouterr().err


def test_unknown_host_key_names_file_key_and_valid_keys(tmp_path, capsys):
    host = tmp_path / "host.toml"
    host.write_text("cores = 4\nspawn_ms = 3\n")
    assert main(["simulate", "--host", str(host), "--duration", "10s"]) == 2
    err = capsys.readouterr().err
    assert str(host) in err and "'spawn_ms'" in err and "spawn_s" in err


def test_ideal_rate_and_text_table(tmp_path, capsys):
    trace = tmp_path / "jobs.csv"
    assert main(["trace", "synth", "--out", str(trace), "--duration", "1m", "--rate", "5/s"]) == 0
    assert len(read_trace(trace)) == pytest.approx(300, rel=0.2)
    capsys.readouterr()
    assert main(["simulate", "--trace", str(trace), "--ideal", "--speed", "2"]) == 0
    table = capsys.readouterr().out
    assert "pool" in table and "peak memory" in table


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--rate", "fast", "--duration", "10s"],
        ["simulate", "--duration", "soon"],
        ["trace", "synth", "--out", "x.csv", "--jobs", "5", "--duration", "1m"],
    ],
)
def test_bad_options_exit_2_with_a_message(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert "error:" in capsys.readouterr().err
