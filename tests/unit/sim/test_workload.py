"""Workload generation, trace reshaping, rate/duration parsing and the host profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kqueue.errors import ConfigError
from kqueue.policy import HostProfile
from kqueue.policy.units import parse_duration, parse_rate
from sim.model.workload import (
    PROTOTYPE_MIX,
    arrival_rate_per_s,
    fit_to_duration,
    load_mix,
    rescale_to_rate,
    speed_up,
    synth,
)


@pytest.mark.parametrize(
    ("text", "per_s"),
    [("1000/min", 1000 / 60), ("20/s", 20.0), ("3600/h", 1.0), ("5", 5.0), ("10/minute", 1 / 6)],
)
def test_parse_rate(text, per_s):
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("45", 45)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["fast", "0/s", "10/fortnight", "-3/min"])
def test_parse_rate_rejects(text):
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["soon", "1x", "h", "0s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_synth_is_seeded_and_follows_the_mix():
    a, b = synth(20_000, 10.0, seed=4), synth(20_000, 10.0, seed=4)
    assert a.equals(b)
    assert not a.equals(synth(20_000, 10.0, seed=5))
    shares = a["job_class"].value_counts(normalize=True)
    for job_class in PROTOTYPE_MIX:
        assert shares[job_class.name] == pytest.approx(job_class.share, abs=0.01)
    assert arrival_rate_per_s(a) == pytest.approx(10.0, rel=0.03)
    assert (a["cpu_s"] <= a["duration_s"]).all()


def test_rescale_and_speed_change_only_arrival_times():
    trace = synth(1000, 2.0, seed=1)
    faster = rescale_to_rate(trace, 20.0)
    assert arrival_rate_per_s(faster) == pytest.approx(20.0)
    assert faster["duration_s"].equals(trace["duration_s"])
    assert arrival_rate_per_s(speed_up(trace, 3.0)) == pytest.approx(3 * arrival_rate_per_s(trace))


def test_fit_to_duration_cuts_or_repeats():
    trace = synth(100, 10.0, seed=2)  # about 10 s of arrivals
    cut = fit_to_duration(trace, 5.0)
    assert cut["submitted_at"].max() < 5.0 and len(cut) < 100
    longer = fit_to_duration(trace, 35.0)
    assert longer["submitted_at"].max() < 35.0 and len(longer) > 300
    assert longer["job_id"].is_unique
    assert np.all(np.diff(longer["submitted_at"].to_numpy()) >= 0)


def test_load_mix_rejects_unknown_keys(tmp_path):
    path = tmp_path / "mix.toml"
    path.write_text('[[classes]]\nname = "a"\nshare = 1\nduration_median_s = 1\n')
    assert load_mix(path)[0].name == "a"
    path.write_text('[[classes]]\nname = "a"\nshare = 1\nduration_median_s = 1\nlatency = 3\n')
    with pytest.raises(ConfigError, match="'latency'.*valid keys"):
        load_mix(path)


def test_host_profile_ideal_is_all_zero_and_loads_toml(tmp_path):
    ideal = HostProfile.ideal()
    others = ("polls", "cpu_share")
    assert all(value == 0 for key, value in ideal.to_dict().items() if key not in others)
    assert ideal.polls is False and ideal.cpu_share == 1  # a share of unlimited cores: all
    path = tmp_path / "host.toml"
    path.write_text("cores = 2\nspawn_s = 0.1\n")
    host = HostProfile.load(path, cores=16)
    assert (host.cores, host.spawn_s) == (16, 0.1)
    path.write_text("cores = -1\n")
    with pytest.raises(ConfigError, match="cores"):
        HostProfile.load(path)
    path.write_text("spawn_ms = 1\n")
    with pytest.raises(ConfigError, match=r"host.toml: unknown key 'spawn_ms'; valid keys"):
        HostProfile.load(path)


def test_host_profile_saves_a_file_that_loads_back_the_same(tmp_path):
    # Given a profile with a bool, an int, floats and an unlimited retained size
    host = HostProfile(cores=2, polls=False, spawn_s=0.0123, retained_job_mb=math.inf)
    # When it is saved with a comment and loaded again
    path = tmp_path / "host.toml"
    host.save(path, comment="measured on a test host")
    # Then the file starts with the comment and holds the same profile
    assert path.read_text().startswith("# measured on a test host\n")
    assert HostProfile.load(path) == host
