"""Coverage-guided fuzzing of the config loader (``kqueue.policy.config.Config.load``) with atheris.

    PYTHONPATH=. python tests/fuzz/atheris_config.py -atheris_runs=100000 [corpus_dir]

Each input is a ``kqueue.toml``: it must load to a valid ``Config`` or raise ``ConfigError``.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["kqueue"]):
    from contracts import assert_loads_or_rejects

    from kqueue.policy.config import Config

from atheris_main import fuzz, scratch_file

SEEDS = [
    Config().to_toml().encode(),
    b'pool_size = 2\npool_max_size = 4\n[jobs."tasks.mail"]\ntier = "inline"\ntimeout_s = 5\n',
    b'timeout_s = inf\n[jobs."a"]\nmax_attempts = 1.0\nestimated_duration_s = 1e3\n',
    b"jobs = [1, [2, {x = 3}]]\npool_sise = 1979-05-27\n",
]
TOKENS = [
    *(f"{key} = ".encode() for key in Config().to_dict()),
    *(t.encode() for t in ('[jobs."', '"]', "[[jobs]]", "jobs.a.", "inf", "nan", "-0.0")),
    *(t.encode() for t in ("true", "1979-05-27T07:32:00Z", "0x7fffffffffffffff", '"auto"')),
    *(t.encode() for t in ("[[[[", "{a = ", "'" * 3, '"' * 3, "\\u0000")),
    b"\x80",
]


def one_input(data: bytes) -> None:
    path = scratch_file("config", ".toml")
    path.write_bytes(data)
    try:
        assert_loads_or_rejects(path)
    finally:
        path.unlink()


if __name__ == "__main__":
    fuzz("config", one_input, SEEDS, TOKENS)
