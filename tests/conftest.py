"""Strict mode, and the slow tests first.

In CI (CI=true) or with TINYLSTM_STRICT=1, a test skipped for a missing tool fails. The ARM toolchain, QEMU,
unicorn and the micropython executable are installed by scripts/setup.sh, so outside opt-in tests (skip
reasons starting with "opt-in") a skip means a broken set-up, which must not pass as green.

Tests marked ``slow`` (README.md, "Tests", says which and why) run first: pytest-xdist hands tests to its
workers in order, so the long ones start while the short ones can still fill the other worker's time. Tests
that share an expensive module fixture carry one ``xdist_group`` (make test runs ``--dist loadgroup``), so
one worker builds it. Under xdist every worker trains with one PyTorch thread: the workers already fill the
cores, and threads that outnumber them wait on each other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator

import pytest

STRICT = os.environ.get("CI", "").lower() == "true" or os.environ.get("TINYLSTM_STRICT") == "1"

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # read when PyTorch starts, here and in the CLI runs tests spawn
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if not reason.startswith("Skipped: opt-in"):
            report.outcome = "failed"
            report.longrepr = f"skipped in strict mode (CI): {reason}; run scripts/setup.sh"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first
