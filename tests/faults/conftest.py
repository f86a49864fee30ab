"""Fixtures of the fault suite; at the end of the session its table is printed and written to docs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.report import FULL, REPORT, write_doc
from tests.integration.conftest import aios_client, effect_server  # noqa: F401  (shared fixtures)


@pytest.fixture(scope="session", autouse=True)
def reliability_report() -> Iterator[None]:
    yield
    # The committed document holds the full suite's figures (`make faults`); the reduced run
    # inside `make test` only prints its table, so it never dirties the working tree.
    if FULL or os.environ.get("AIOS_FAULTS_DOC"):
        write_doc()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT.rows:
        terminalreporter.write_sep("=", "fault suite")
        terminalreporter.write_line(REPORT.table())
