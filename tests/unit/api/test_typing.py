"""``dispatch`` is typed with ``ParamSpec``, and the package says it ships types (PEP 561)."""

from __future__ import annotations

import tomllib
import typing

import kqueue
from tests.conftest import ROOT


def test_the_package_ships_py_typed_as_package_data():
    assert (ROOT / "kqueue" / "py.typed").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["kqueue"]


def test_dispatch_and_options_dispatch_take_the_jobs_parameters():
    # A type checker binds Job[P, R] from the decorated function: dispatch(*P.args, **P.kwargs)
    hints = typing.get_type_hints(kqueue.Job.dispatch)
    assert "P.args" in str(hints["args"]) and "P.kwargs" in str(hints["kwargs"])
    hints = typing.get_type_hints(kqueue.JobCall.dispatch)
    assert "P.args" in str(hints["args"]) and str(hints["return"]).endswith("JobHandle[~R]")


def test_the_async_and_celery_dispatches_take_the_jobs_parameters_too():
    for method in (kqueue.Job.dispatch_async, kqueue.JobCall.dispatch_async, kqueue.Job.delay):
        hints = typing.get_type_hints(method)
        assert "P.args" in str(hints["args"]) and "P.kwargs" in str(hints["kwargs"]), method
        assert str(hints["return"]).endswith("JobHandle[~R]"), method
