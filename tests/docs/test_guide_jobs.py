"""docs/guide/jobs.md stays true: its apps run under real workers and every example passes.

The guide's ``# file:`` blocks are written to a scratch folder, its ``kqueue run`` lines start
real workers there (``tasks.py`` on SQLite, the Celery-style ``proj.py`` on the session's private
Redis through ``BROKER_URL``), and each section's other Python blocks run as scripts against
them; each block checks itself with ``assert``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT, kqueue_env, require_redis_server, start_kqueue
from tests.integration.test_redis_faults import stop

GUIDE = ROOT / "docs" / "guide" / "jobs.md"
#: The sections issue 15 asks the guide for, each with a block that runs.
SECTIONS = (
    "Dispatching and handles",
    "Results",
    "Delays",
    "Unique jobs",
    "Retries",
    "Cancelling",
    "Async client",
    "Testing with memory://",
    "Moving from Celery",
)


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", GUIDE.read_text(), flags=re.M)
    return {"": parts[0], **dict(zip(parts[1::2], parts[2::2], strict=True))}


def _scripts(section: str) -> list[str]:
    return [b for b in _blocks(_sections()[section], "python") if not b.startswith("# file:")]


@pytest.fixture(scope="module")
def guide_dir(tmp_path_factory, request):
    """A folder with the guide's files and its workers running (SQLite and private Redis)."""
    require_redis_server()
    folder = tmp_path_factory.mktemp("guide")
    text = GUIDE.read_text()
    for block in _blocks(text, "python"):
        if block.startswith("# file:"):
            name = block.splitlines()[0].removeprefix("# file:").strip()
            (folder / name).write_text(block)
    broker = request.getfixturevalue("redis_server").url + "?prefix=guide"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BROKER_URL", broker)
        commands = [c for b in _blocks(text, "bash") for c in b.splitlines() if "kqueue run" in c]
        workers = [start_kqueue(folder, *shlex.split(c)[1:]) for c in commands]
        try:
            yield folder, broker
        finally:
            stop(workers)


def test_the_guide_has_every_section_with_a_block_that_runs():
    sections = _sections()
    assert [s for s in SECTIONS if s not in sections or not _scripts(s)] == []
    [diff] = _blocks(sections["Moving from Celery"], "diff")
    assert diff.splitlines() == ["-from celery import Celery", "+from kqueue import Celery"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("section", SECTIONS)
def test_each_sections_examples_run_against_real_workers(guide_dir, section):
    folder, broker = guide_dir
    env = {**kqueue_env(folder), "BROKER_URL": broker}
    for number, script in enumerate(_scripts(section)):
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (section, number, done.stdout, done.stderr)
