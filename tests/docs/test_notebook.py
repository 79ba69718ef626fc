"""The capacity-planning notebook runs top to bottom, with its figures inline, on the synthetic
trace and on a cut of a real HPC log, changing only ``TRACE_PATH`` (any cell error fails).

The kernel gets matplotlib's inline backend through ``MPLBACKEND``: a non-GUI backend, and the
one Jupyter uses, so the figures land in the outputs as PNGs (Agg would draw them nowhere).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "capacity_planning.ipynb"
#: CI puts a copy of ``shared/`` beside the clone.
REAL_TRACE = ROOT.parent / "shared" / "traces" / "KTH-SP2-1996-2.1-cln.csv.gz"
#: Rows of the real log the notebook runs on (46 days of arrivals, no cpu_s or memory_mb).
CUT_ROWS = 3000
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Figures the notebook shows: the trace, default memory, the sweeps, the tuner's four, hosts.
FIGURES = 7


def run_notebook(monkeypatch, **parameters: str) -> nbformat.NotebookNode:
    """Execute the notebook with each ``NAME = ...`` line of its parameters cell replaced by
    ``NAME = parameters[NAME]`` (Python source); returns the executed notebook."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", INLINE_BACKEND)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    for name, value in parameters.items():
        (line,) = [x for x in cell.source.splitlines() if x.startswith(f"{name} = ")]
        cell.source = cell.source.replace(line, f"{name} = {value}")
    client = NotebookClient(notebook, timeout=150, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})  # fmt: skip
    client.execute()
    return notebook


def _outputs(notebook) -> list:
    return [o for cell in notebook.cells for o in cell.get("outputs", [])]


def _text(notebook) -> str:
    return "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in _outputs(notebook)
    )


def _pngs(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(notebook))


def test_the_notebook_shows_its_figures_inline_and_imports_the_installed_package():
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert "matplotlib.use" not in source and "sys.path" not in source


def test_the_notebook_runs_on_the_synthetic_trace_with_its_figures(monkeypatch):
    notebook = run_notebook(monkeypatch)
    text = _text(notebook)
    assert "3,000 jobs over" in text and "(the trace's own rate)" in text
    assert "hosts: 1" in text and "pool_size =" in text
    assert _pngs(notebook) >= FIGURES


def test_a_multi_host_answer_shows_every_hosts_share(monkeypatch):
    # Given a host too small for the synthetic trace (it offers about 5 cores of CPU)
    notebook = run_notebook(monkeypatch, HOST="HostProfile(cores=2)")
    text = _text(notebook)
    # Then the answer is several hosts, and every host's share is simulated and drawn
    hosts = int(text.split("hosts: ")[1].split()[0])
    assert hosts >= 2
    shares = text.split("jobs per host: [")[1].split("]")[0].split(", ")
    assert len(shares) == hosts and sum(map(int, shares)) == 3000
    assert _pngs(notebook) >= FIGURES


@pytest.fixture
def real_trace_cut(tmp_path) -> Path:
    """The first ``CUT_ROWS`` jobs of the KTH SP2 log, in the test's folder."""
    if not REAL_TRACE.exists():
        message = f"no real trace at {REAL_TRACE} (CI copies shared/ beside the clone)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with gzip.open(REAL_TRACE, "rt") as source:
        lines = [next(source) for _ in range(CUT_ROWS + 1)]
    cut = tmp_path / "kth-sp2-cut.csv"
    cut.write_text("".join(lines))
    return cut


def test_the_notebook_runs_on_a_real_log_by_changing_trace_path_only(monkeypatch, real_trace_cut):
    # Given a real HPC log: sparse arrivals, jobs of hours, no cpu_s and no memory_mb
    notebook = run_notebook(monkeypatch, TRACE_PATH=repr(str(real_trace_cut)))
    text = _text(notebook)
    # Then it is replayed at its own rate (a few jobs an hour), and the defaults are counted
    assert f"{CUT_ROWS:,} jobs over" in text and "/h (the trace's own rate)" in text
    assert f"{CUT_ROWS:,} rows without cpu_s" in text and f"{CUT_ROWS:,} without memory_mb" in text
    # And the tuner's answer and every figure are there
    assert "hosts: " in text and "pool_size =" in text
    assert _pngs(notebook) >= FIGURES
