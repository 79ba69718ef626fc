"""The hosts experiment, CI-sized: 1, 2 and 3 namespace hosts serve a small burst of the mix."""

from __future__ import annotations

import re

import pytest

from tests.conftest import require_redis_server, run_experiment
from tests.integration.test_netns import require_netns

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.timeout(300)
def test_hosts_prints_real_and_simulated_throughput_per_host_count():
    require_netns()
    require_redis_server()
    done = run_experiment("hosts.py", "--jobs", "150", timeout=280)
    number = r"\s+([\d,.]+)"
    rows = re.findall(r"^\s+([123])" + number * 6 + "$", done.stdout, re.M)
    assert [r[0] for r in rows] == ["1", "2", "3"], done.stdout
    for _, *values in rows:
        real, _, got_share, sim_got, _, _ = (float(v.replace(",", "")) for v in values)
        # coarse: the same order of magnitude (a busy 2-core box moves the real side a lot)
        assert real > 0 and 0 < got_share <= 1, done.stdout
        assert 0.1 < real / sim_got < 10, done.stdout
