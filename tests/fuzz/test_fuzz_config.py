"""Fuzzing the config loader: any ``kqueue.toml`` loads to a valid ``Config`` or raises
``ConfigError`` naming the file; a config rendered with ``to_toml`` loads back equal.
"""

from __future__ import annotations

import dataclasses
import json
import string

from hypothesis import given
from hypothesis import strategies as st

from kqueue.policy.config import _CHECKS, _RULES, Config, JobOptions, Tier
from tests.fuzz.contracts import assert_loads_or_rejects
from tests.fuzz.fuzz_support import FUZZ, nasty_bytes, nasty_text

SETTINGS = [f.name for f in dataclasses.fields(Config) if f.name != "jobs"]
JOB_KEYS = [f.name for f in dataclasses.fields(JobOptions)]
#: Job keys whose values a rule checks (``setting`` draws them); ``tier`` and ``rate_limit``
#: are drawn on their own.
RULED_JOB_KEYS = [key for key in JOB_KEYS[1:] if key in _RULES]
RATE_UNITS = ("s", "min", "h")


@FUZZ
@given(nasty_bytes)
def test_arbitrary_bytes_load_or_raise_config_error(tmp_path, data):
    path = tmp_path / "kqueue.toml"
    path.write_bytes(data)
    assert_loads_or_rejects(path)


#: TOML value literals, right and wrong for a setting.
toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats().map(lambda x: str(x).replace("e+", "e")),
    st.sampled_from(["inf", "-inf", "nan", "+inf", "0.0", "-0.0", "1e999", "true", "false"]),
    st.sampled_from(["1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "0x10", "1_000"]),
    st.sampled_from(Tier).map(lambda t: json.dumps(t.value)),
    nasty_text.map(lambda t: json.dumps(t, ensure_ascii=False)),
)
toml_values = st.one_of(
    toml_scalars,
    st.lists(toml_scalars, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
    st.integers(1, 2000).map(lambda depth: "[" * depth + "]" * depth),
)
keys = st.sampled_from(SETTINGS + JOB_KEYS) | st.text(string.ascii_letters, min_size=1)


@st.composite
def near_configs(draw) -> str:
    """TOML with real and made-up keys, good and bad values, top level and job tables."""
    lines = [f"{draw(keys)} = {draw(toml_values)}" for _ in range(draw(st.integers(0, 4)))]
    for _ in range(draw(st.integers(0, 2))):
        name = draw(nasty_text | st.sampled_from(["tasks.mail", "a.b"]))
        lines.append(f"[jobs.{json.dumps(name, ensure_ascii=False)}]")
        lines += [f"{draw(keys)} = {draw(toml_values)}" for _ in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["jobs = 1", "[jobs]", "jobs.x = 1", "[[jobs]]"])))
    return "\n".join(lines) + "\n"


@FUZZ
@given(near_configs())
def test_near_configs_load_or_raise_config_error(tmp_path, text):
    path = tmp_path / "kqueue.toml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    assert_loads_or_rejects(path)


@FUZZ
@given(key=st.sampled_from(SETTINGS + JOB_KEYS), value=toml_values, in_job=st.booleans())
def test_one_setting_loads_or_raises_config_error(tmp_path, key, value, in_job):
    path = tmp_path / "kqueue.toml"
    path.write_text(("[jobs.a]\n" if in_job else "") + f"{key} = {value}\n", encoding="utf-8")
    assert_loads_or_rejects(path)


def setting(key: str):
    """Values that pass a setting's rule."""
    kind, rule = _RULES[key]
    check = _CHECKS[rule]
    if kind is int:
        values = st.integers(0, 2**31)
    else:
        values = st.floats(0, 1e9, allow_subnormal=True) | st.floats(0, 1, exclude_min=True)
    return values.filter(check)


@st.composite
def valid_configs(draw) -> Config:
    """A config with random valid settings and job tables (job names of any text)."""
    values = {key: draw(setting(key)) for key in draw(st.sets(st.sampled_from(SETTINGS)))}
    for low, high in [
        ("inline_max_duration_s", "pooled_max_duration_s"),
        ("pool_size", "pool_max_size"),
        ("load_route_exit_wait_s", "load_route_enter_wait_s"),
    ]:
        a, b = values.get(low, getattr(Config, low)), values.get(high, getattr(Config, high))
        values[low], values[high] = min(a, b), max(a, b)
    jobs = {}
    for name in draw(st.lists(nasty_text | st.text(), max_size=3, unique=True)):
        table = {key: draw(setting(key)) for key in draw(st.sets(st.sampled_from(RULED_JOB_KEYS)))}
        if draw(st.booleans()):
            table["rate_limit"] = (
                f"{draw(st.integers(1, 10**6))}/{draw(st.sampled_from(RATE_UNITS))}"
            )
        if draw(st.booleans()):
            table["tier"] = draw(st.sampled_from(Tier)).value
        jobs[name] = table
    # every memory limit must fit the budget (a rule across settings): raise the budget to it
    limits_mb = [values.get("max_memory_mb", Config.max_memory_mb)]
    limits_mb += [t["max_memory_mb"] for t in jobs.values() if "max_memory_mb" in t]
    if "memory_budget_mb" in values:
        values["memory_budget_mb"] = max(values["memory_budget_mb"], *limits_mb)
    return Config.from_mapping({**values, "jobs": jobs})


@FUZZ
@given(valid_configs())
def test_to_toml_loads_back_equal(tmp_path, config):
    path = tmp_path / "kqueue.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert Config.load(path) == config
