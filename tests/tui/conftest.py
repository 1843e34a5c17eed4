"""Fixtures for the dashboard's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Test files not yet converted still say `from conftest import …`: keep those names
# importable here until they import from tests.helpers.
from tests.helpers.snapshots import snapshot_app  # noqa: F401
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for  # noqa: F401
from tests.helpers.tui import DashboardHarness as Harness  # noqa: F401


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[DashboardHarness]:
    made = DashboardHarness(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()
