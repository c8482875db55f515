"""The suite's own scheduling: under pytest-xdist every test carries its file's group (or
the shared pipeline's), so a file's module fixtures and the session pipeline are built once.
With pytest 9.2 and xdist 3.8 the groups were silently dropped and every fixture was built
in every worker (pyproject.toml pins pytest below 9.2)."""

from __future__ import annotations

import os

import pytest


@pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="runs under pytest-xdist")
def test_this_test_is_scheduled_in_its_files_group(request):
    assert request.node.nodeid.endswith("@test_suite_groups"), request.node.nodeid


def test_the_scheduling_order_names_real_files_and_is_kept(request):
    """The order of tests/conftest.py (the pipeline's builder first, the heaviest files while
    it builds) reaches the workers only without xdist's reordering by test count, and only
    if every file it names exists."""
    from tests import conftest

    names = [conftest.PIPELINE_FIRST, *conftest.NO_FITS_FIRST, *conftest.HEAVY_FIRST]
    names += conftest.PIPELINE_USERS
    missing = [n for n in names if not (conftest.ROOT / "tests" / f"{n}.py").is_file()]
    assert missing == []
    assert request.config.getoption("loadscopereorder") is False
