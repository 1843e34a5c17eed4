"""The CLI opens the dashboard only when asked, and never loads Textual otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def kugetsu(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kugetsu_tui", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_the_cli_imports_no_textual() -> None:
    code = "import sys, kugetsu_tui.cli; sys.exit('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_dashboard_without_a_terminal_says_so(tmp_path: Path) -> None:
    for args in (("tui",), ("run",)):
        done = kugetsu(*args, home=tmp_path / "home")
        assert done.returncode == 2, done
        assert "needs a terminal" in done.stderr and "--headless" in done.stderr


def test_bare_kugetsu_without_a_terminal_prints_help(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kugetsu_tui"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 0 and "usage: kugetsu" in done.stdout
