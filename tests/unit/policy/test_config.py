"""Config: defaults, kqueue.toml loading, precedence, validation errors, to_toml round trip."""

from __future__ import annotations

import dataclasses
import math

import pytest

from kqueue.errors import ConfigError
from kqueue.policy.config import (
    Config,
    JobOptions,
    JobSettings,
    Tier,
    resolve_job,
    retry_delay_s,
    validate_job_options,
)

JOB = "app.jobs.make_pdf"


def write(tmp_path, text: str):
    path = tmp_path / "kqueue.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults -----------------------------------------------------------------------------------

PROTOTYPE_DEFAULTS = [
    ("inline_max_duration_s", 1.0),
    ("pooled_max_duration_s", 30.0),
    ("default_estimate_s", 5.0),
    ("pool_size", 10),
    ("pool_max_size", 20),
    ("pool_scale_step", 2),
    ("pool_scale_cooldown_s", 3.0),
    ("max_concurrent_inline", 100),
    ("max_concurrent_isolated", 5),
    ("max_jobs_per_worker", 1000),
    ("max_worker_memory_mb", 512.0),
    ("timeout_s", 300.0),
    ("max_memory_mb", 1024.0),
    ("max_attempts", 3),
    ("visibility_timeout_s", 60.0),
    ("retry_backoff_s", 1.0),
    ("retry_backoff_max_s", 300.0),
    ("history_window", 100),
    ("history_min_samples", 3),
    ("estimate_quantile", 0.9),
]


@pytest.mark.parametrize(("key", "default"), PROTOTYPE_DEFAULTS)
def test_default(key, default):
    assert getattr(Config(), key) == default
    assert type(getattr(Config(), key)) is type(default)


def test_load_without_file_or_cli_is_the_default():
    assert Config.load() == Config()
    assert Config.load(None, pool_size=None) == Config()


# --- loading kqueue.toml -----------------------------------------------------------------------


def test_load_top_level_keys_and_job_tables(tmp_path):
    # Given a file with top-level settings and one per-job table
    path = write(
        tmp_path,
        f"""
pool_size = 4
pool_max_size = 8
inline_max_duration_s = 0.5
timeout_s = 60

[jobs."{JOB}"]
tier = "pool"
timeout_s = 120
max_attempts = 5

[jobs.send_mail]
estimated_duration_s = 0.1
""",
    )
    # When it is loaded
    config = Config.load(path)
    # Then the top level overrides defaults, ints become floats where a float is expected
    assert (config.pool_size, config.pool_max_size) == (4, 8)
    assert config.inline_max_duration_s == 0.5
    assert config.timeout_s == 60.0 and isinstance(config.timeout_s, float)
    assert config.max_concurrent_inline == 100  # untouched default
    # And each job table becomes JobOptions with tier parsed to a Tier
    assert config.job_options(JOB) == JobOptions(tier=Tier.POOL, timeout_s=120.0, max_attempts=5)
    assert config.job_options("send_mail") == JobOptions(estimated_duration_s=0.1)
    assert config.job_options("not.in.file") == JobOptions()


def test_from_mapping_matches_load(tmp_path):
    path = write(tmp_path, 'pool_size = 3\n[jobs.a]\ntier = "isolated"\n')
    mapping = {"pool_size": 3, "jobs": {"a": {"tier": "isolated"}}}
    assert Config.from_mapping(mapping) == Config.load(path)


# --- precedence: declared > CLI > file job table > file top level > default ---------------------

# Each layer sets timeout_s (a job setting that also has a top-level default) or leaves it unset.
# Columns: file top level, file job table, CLI, declared on the job -> timeout the job gets.
PRECEDENCE = [
    pytest.param(None, None, None, None, 300.0, id="default"),
    pytest.param(10, None, None, None, 10.0, id="file top level beats default"),
    pytest.param(10, 20, None, None, 20.0, id="file job table beats file top level"),
    pytest.param(None, 20, None, None, 20.0, id="file job table beats default"),
    pytest.param(10, 20, 30, None, 30.0, id="CLI beats file job table"),
    pytest.param(10, None, 30, None, 30.0, id="CLI beats file top level"),
    pytest.param(10, 20, 30, 40, 40.0, id="declared beats CLI"),
    pytest.param(10, 20, None, 40, 40.0, id="declared beats file job table"),
    pytest.param(None, None, None, 40, 40.0, id="declared beats default"),
]


@pytest.mark.parametrize(("top", "table", "cli", "declared", "expected"), PRECEDENCE)
def test_precedence_of_layers(tmp_path, top, table, cli, declared, expected):
    lines = [] if top is None else [f"timeout_s = {top}"]
    lines.append(f'[jobs."{JOB}"]')
    if table is not None:
        lines.append(f"timeout_s = {table}")
    config = Config.load(write(tmp_path, "\n".join(lines) + "\n"), timeout_s=cli)

    settings = resolve_job(config, JOB, JobOptions(timeout_s=declared))

    assert settings.timeout_s == expected


def test_precedence_with_cli_equals_load_with_cli(tmp_path):
    path = write(tmp_path, f'max_attempts = 2\n[jobs."{JOB}"]\nmax_attempts = 4\n')
    assert Config.load(path).with_cli(max_attempts=7) == Config.load(path, max_attempts=7)


def test_resolve_job_fills_every_setting():
    config = Config.from_mapping({"max_memory_mb": 256, "jobs": {JOB: {"max_attempts": 9}}})
    declared = JobOptions(estimated_duration_s=2.5)
    assert resolve_job(config, JOB, declared) == JobSettings(
        tier=Tier.AUTO,
        estimated_duration_s=2.5,
        timeout_s=300.0,
        max_memory_mb=256.0,
        max_attempts=9,
    )


@pytest.mark.parametrize(
    ("table_tier", "declared_tier", "expected"),
    [
        (None, None, Tier.AUTO),
        ("isolated", None, Tier.ISOLATED),
        ("isolated", Tier.INLINE, Tier.INLINE),
        (None, Tier.POOL, Tier.POOL),
    ],
)
def test_tier_precedence(table_tier, declared_tier, expected):
    table = {} if table_tier is None else {"tier": table_tier}
    config = Config.from_mapping({"jobs": {JOB: table}})
    assert resolve_job(config, JOB, JobOptions(tier=declared_tier)).tier is expected


@pytest.mark.parametrize(("declared", "expected"), [("pool", Tier.POOL), ("auto", Tier.AUTO)])
def test_declared_tier_name_resolves_to_a_tier(declared, expected):
    assert resolve_job(Config(), JOB, JobOptions(tier=declared)).tier is expected


def test_declared_unknown_tier_is_rejected_naming_job_and_choices():
    with pytest.raises(ConfigError, match=r"job 'app.jobs.make_pdf': tier = 'fast'.*inline, pool"):
        resolve_job(Config(), JOB, JobOptions(tier="fast"))


def test_replace_keeps_job_tables_but_with_cli_clears_the_key():
    config = Config.from_mapping({"jobs": {JOB: {"timeout_s": 20}}})
    assert config.replace(timeout_s=5).job_options(JOB).timeout_s == 20.0
    assert config.with_cli(timeout_s=5).job_options(JOB).timeout_s is None


# --- errors: unknown keys and bad values --------------------------------------------------------

BAD_FILES = [
    # (file text, words the message must contain)
    pytest.param("pool_sise = 3\n", ["'pool_sise'", "pool_size", "pool_max_size"], id="unknown"),
    pytest.param(
        '[jobs."a"]\ntimeout = 3\n',
        ['[jobs."a"]', "'timeout'", "tier", "timeout_s", "max_attempts"],
        id="unknown key in job table",
    ),
    pytest.param('pool_size = "ten"\n', ["pool_size", "'ten'", "integer"], id="string for int"),
    pytest.param("pool_size = 2.5\n", ["pool_size", "2.5", "integer"], id="fraction for int"),
    pytest.param("pool_size = -1\n", ["pool_size", "-1", ">= 0"], id="negative int"),
    pytest.param("timeout_s = -1.5\n", ["timeout_s", "-1.5", "> 0"], id="negative float"),
    pytest.param("timeout_s = 0\n", ["timeout_s", "> 0"], id="zero where positive"),
    pytest.param("pool_size = true\n", ["pool_size", "True"], id="bool for int"),
    pytest.param("retry_backoff_s = false\n", ["retry_backoff_s", "False"], id="bool for float"),
    pytest.param("estimate_quantile = 1.5\n", ["estimate_quantile", "(0, 1]"], id="quantile"),
    pytest.param(
        '[jobs."a"]\ntier = "fast"\n',
        ['[jobs."a"]', "tier", "'fast'", "auto", "inline", "pool", "isolated"],
        id="unknown tier",
    ),
    pytest.param('[jobs."a"]\ntier = 5\n', ["tier", "5", "inline"], id="tier not a string"),
    pytest.param('[jobs."a"]\nmax_attempts = 0\n', ['[jobs."a"]', "max_attempts"], id="job value"),
    pytest.param('[jobs."a"]\nmax_attempts = true\n', ["max_attempts", "True"], id="job bool"),
    pytest.param(
        "pool_size = 10\npool_max_size = 5\n",
        ["pool_max_size", "pool_size", "5", "10"],
        id="pool_max_size < pool_size",
    ),
    pytest.param(
        "inline_max_duration_s = 10\npooled_max_duration_s = 5\n",
        ["pooled_max_duration_s", "inline_max_duration_s"],
        id="pooled < inline",
    ),
    pytest.param("jobs = 3\n", ["jobs"], id="jobs not a table"),
    pytest.param("jobs.a = 3\n", ["jobs", "a"], id="job not a table"),
    pytest.param("pool_size = \n", ["not valid TOML"], id="invalid TOML"),
]


@pytest.mark.parametrize(("text", "words"), BAD_FILES)
def test_bad_file_is_rejected_naming_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Config.load(path)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_file_is_rejected(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as caught:
        Config.load(path)
    assert str(path) in str(caught.value)


# --- found by tests/fuzz -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(b"\x80", ["not valid TOML", "not UTF-8", "byte 0"], id="UnicodeDecodeError"),
        pytest.param(b"a = " + b"[" * 5000, ["nested too deeply"], id="RecursionError"),
        pytest.param(b"timeout_s = inf\n", ["timeout_s = inf", "finite number > 0"], id="inf"),
        pytest.param(b"pool_scale_cooldown_s = -inf\n", ["-inf", "finite"], id="-inf"),
        pytest.param(b'[jobs."a"]\nestimated_duration_s = inf\n', ['[jobs."a"]'], id="job inf"),
    ],
)
def test_a_file_the_fuzzers_broke_is_a_config_error(tmp_path, data, words):
    path = tmp_path / "kqueue.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        Config.load(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_a_directory_is_a_config_error(tmp_path):
    # IsADirectoryError leaked before
    with pytest.raises(ConfigError, match="cannot read the config file: Is a directory"):
        Config.load(tmp_path)


def test_an_integer_past_float_range_on_the_command_line_is_a_config_error():
    # float(value) raised OverflowError before
    with pytest.raises(ConfigError, match="timeout_s = 1000"):
        Config().with_cli(timeout_s=10**400)


@pytest.mark.parametrize(
    ("cli", "words"),
    [
        ({"pool_sise": 3}, ["command line", "'pool_sise'", "pool_size"]),
        ({"pool_size": -2}, ["command line", "pool_size", "-2"]),
        ({"pool_size": True}, ["command line", "pool_size"]),
        ({"pool_max_size": 5}, ["command line", "pool_max_size", "pool_size"]),
    ],
)
def test_bad_cli_option_is_rejected(tmp_path, cli, words):
    path = write(tmp_path, "pool_size = 10\n")
    with pytest.raises(ConfigError) as caught:
        Config.load(path, **cli)
    for word in words:
        assert word in str(caught.value)


def test_bad_value_given_in_code_is_rejected():
    with pytest.raises(ConfigError, match="pool_size"):
        Config(pool_size=-1)
    with pytest.raises(ConfigError, match="'pool_sise'"):
        Config().replace(pool_sise=1)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_validate_job_options_parses_tier_and_rejects_bad_values():
    assert validate_job_options(JobOptions(tier="pool"), "decorator").tier is Tier.POOL
    with pytest.raises(ConfigError, match="decorator.*timeout_s"):
        validate_job_options(JobOptions(timeout_s=-1), "decorator")


# --- to_toml round trip -------------------------------------------------------------------------

ROUND_TRIPS = [
    pytest.param(Config(), id="defaults"),
    pytest.param(
        Config.from_mapping(
            {
                "pool_size": 2,
                "pool_max_size": 3,
                "poll_interval_s": 0.05,
                "estimate_quantile": 0.75,
                "retry_backoff_s": 0.001,
                "jobs": {
                    JOB: {"tier": "isolated", "timeout_s": 600, "max_attempts": 1},
                    "send_mail": {"estimated_duration_s": 0.2, "max_memory_mb": 64.5},
                    "empty": {},
                },
            }
        ),
        id="changed settings and job tables",
    ),
]


@pytest.mark.parametrize("config", ROUND_TRIPS)
def test_to_toml_round_trips(tmp_path, config):
    path = write(tmp_path, config.to_toml())
    assert Config.load(path) == config


def test_to_toml_round_trips_job_names_that_need_escaping(tmp_path):
    config = Config.from_mapping({"jobs": {'say "hi"\\now\x7fé': {"max_attempts": 2}, "plain": {}}})
    assert Config.load(write(tmp_path, config.to_toml())) == config


def test_config_is_frozen_and_hashable():
    config = Config.from_mapping({"jobs": {JOB: {"max_attempts": 2}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pool_size = 3  # type: ignore[misc]
    assert len({config, Config.from_mapping({"jobs": {JOB: {"max_attempts": 2}}})}) == 1


# --- retry backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "cap", "attempt", "expected"),
    [
        (1.0, 300.0, 1, 1.0),
        (1.0, 300.0, 2, 2.0),
        (1.0, 300.0, 3, 4.0),
        (1.0, 300.0, 9, 256.0),
        (1.0, 300.0, 10, 300.0),  # 512 capped
        (0.5, 10.0, 4, 4.0),
        (0.5, 10.0, 6, 10.0),
        (2.0, 300.0, 0, 2.0),  # attempt 0 is treated as the first
        (0.0, 300.0, 5, 0.0),
        (1.0, 300.0, 5000, 300.0),  # a very high attempt count does not overflow
    ],
)
def test_retry_delay_doubles_and_caps(base, cap, attempt, expected):
    config = Config(retry_backoff_s=base, retry_backoff_max_s=cap)
    assert retry_delay_s(config, attempt) == expected


def test_a_routing_threshold_may_be_unbounded_but_no_other_setting_may_be_infinite(tmp_path):
    # Given a file that sends everything up to any length to the pool
    path = tmp_path / "kqueue.toml"
    path.write_text("pooled_max_duration_s = inf\n")
    # Then it loads (inf means "no upper end" there), while an infinite timeout is refused
    assert Config.load(path).pooled_max_duration_s == math.inf
    path.write_text("timeout_s = inf\n")
    with pytest.raises(ConfigError, match="timeout_s = inf is invalid; expected a finite number"):
        Config.load(path)
