"""Strict mode: in CI (CI=true) or with TINYLSTM_STRICT=1, a test skipped for a missing tool fails.

The ARM toolchain, QEMU, unicorn and the micropython executable are installed by
scripts/setup.sh, so outside opt-in tests (skip reasons starting with "opt-in") a skip means a
broken set-up, which must not pass as green.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

STRICT = os.environ.get("CI", "").lower() == "true" or os.environ.get("TINYLSTM_STRICT") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if not reason.startswith("Skipped: opt-in"):
            report.outcome = "failed"
            report.longrepr = f"skipped in strict mode (CI): {reason}; run scripts/setup.sh"
