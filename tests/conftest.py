"""Fixtures for every test: a harness with a private home, a git repo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Test files not yet converted still say `from conftest import …`: keep those names
# importable here until they import from tests.helpers.harness.
from tests.helpers.harness import (  # noqa: F401
    FAKE_AGENT,
    PY,
    TOKEN_VAR,
    WAIT,
    Kugetsu,
    ended,
    git,
    make_repo,
    script,
    wait_until,
)


@pytest.fixture
def kg(tmp_path: Path) -> Iterator[Kugetsu]:
    harness = Kugetsu(tmp_path)
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")
