"""Fixtures for the dashboard's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Test files not yet converted still say `from conftest import …`: keep those names
# importable here until they import from tests.helpers.
from tests.helpers.snapshots import (  # noqa: F401
    ATTACHED,
    SNAPSHOT_ROOT,
    seed_board,
    snapshot_app,
    snapshot_home,
)
from tests.helpers.tui import (  # noqa: F401
    FAILER,
    FIXED_MACHINE,
    GIB,
    MIB,
    SLEEPER,
    T0,
    DashboardHarness,
    fixed_machine,
    screen_lines,
    wait_for,
    write_config,
)
from tests.helpers.tui import DashboardHarness as Harness  # noqa: F401


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[DashboardHarness]:
    made = DashboardHarness(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()
