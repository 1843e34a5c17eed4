"""The first run as a newcomer meets it: the README's commands, the demo's tour and the
hints it prints (a command that works from where the person stands)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kugetsu_tui.demo import LOW_WATER, WAVE, Tour, prepare
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.model import State
from kugetsu_tui.engine.store import Store
from tests.helpers.harness import PY, Kugetsu, git

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import readme_check  # noqa: E402


def test_the_readme_set_up_puts_kugetsu_on_path_and_ci_runs_its_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = readme_check.sh_blocks(readme)
    setup = [readme_check.command_of(line) for line in blocks["Try it"][0]]
    # One command installs, puts kugetsu on PATH for the shell and starts the demo.
    assert len(setup) == 1 and setup[0].startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert setup[0].endswith(" && . .venv/bin/activate && kugetsu demo")
    assert "python3-venv" in readme and "pipx install ." in readme and "uv tool install ." in readme
    use = [readme_check.command_of(line) for line in blocks["Use"][0]]
    assert use and all("kugetsu " in line for line in use)
    assert not [line for line in use if " | " in line.replace("| kugetsu", "")], "alternatives are not a pipe"
    # The README's test command is exactly what CI runs.
    test_command = next(b[0] for b in blocks["Try it"][1:] if "pytest" in b[0])
    assert test_command in (ROOT / ".ci" / "run").read_text()
    assert "rm -rf .venv" not in (ROOT / ".ci" / "run").read_text()


def test_readme_check_script_runs_the_lines_as_written() -> None:
    script = readme_check.script_for(
        ["python3 -m venv .venv && . .venv/bin/activate && kugetsu demo"],
        ["kugetsu run --headless --forever"],
    )
    assert ". .venv/bin/activate && KUGETSU_DEMO_SPEED=0.1 kugetsu demo --headless" in script
    assert "check 'kugetsu run --headless --forever' '0 124' 4" in script


def _demo(kg: Kugetsu, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = kg.env | {"KUGETSU_DEMO_SPEED": "0.05", "PATH": path}
    kugetsu = str(Path(PY).with_name("kugetsu"))
    return subprocess.run(
        [kugetsu, "demo", "--headless", "--home", str(kg.root / "demo"), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_demo_hint_names_the_kugetsu_in_use_when_it_is_not_on_path(kg: Kugetsu) -> None:
    kugetsu = Path(PY).with_name("kugetsu")
    out = _demo(kg, "/usr/bin:/bin", "--tasks", "1")
    assert out.returncode == 0, out.stderr
    assert f"look around with  {kugetsu} status --home " in out.stdout.splitlines()[-1]


def test_the_demo_hint_says_kugetsu_when_it_is_on_path(kg: Kugetsu) -> None:
    out = _demo(kg, f"{Path(PY).parent}:/usr/bin:/bin", "--tasks", "1")
    assert out.returncode == 0, out.stderr
    assert "look around with  kugetsu status --home " in out.stdout.splitlines()[-1]


def test_the_demo_tour_shows_retries_a_cancel_a_cooldown_a_dependency_and_edits(kg: Kugetsu) -> None:
    out = _demo(kg, os.environ["PATH"])
    assert out.returncode == 0, out.stderr
    kg.home = kg.root / "demo" / "home"
    events = kg.events()
    types = {e["type"] for e in events}
    assert {"task_retrying", "task_cancelled", "cooldown_started", "cooldown_ended"} <= types
    tasks = {t["prompt"]: t for t in kg.tasks().values()}
    assert tasks["endless: refactor the legacy module"]["state"] == "cancelled"
    assert tasks["flaky: speed up the test suite"]["state"] == "succeeded"
    assert tasks["broken: migrate the build to the new toolchain"]["state"] == "failed"
    assert tasks["rate: summarise the open issues"]["state"] == "succeeded"
    # The release notes waited for the two tasks before them.
    notes = tasks["write the release notes"]
    firsts = [
        tasks["fix the off-by-one in the parser"],
        tasks["edit: rename Session to Connection everywhere"],
    ]
    assert notes["state"] == "succeeded"
    assert all(t["ended_at"] <= notes["started_at"] for t in firsts)
    # The edit left a change on its branch, ready to diff and merge.
    edit = tasks["edit: rename Session to Connection everywhere"]
    diff = git(kg.root / "demo" / "repo", "diff", "--stat", f"main...{edit['branch']}")
    assert "app.py" in diff and "CHANGES.md" in diff


def test_with_the_dashboard_the_tour_adds_a_wave_when_the_queue_runs_low(tmp_path: Path) -> None:
    home = prepare(tmp_path, 1)
    store = Store(home.db_path)
    try:
        tour = Tour(home, tmp_path / "repo", waves=True)
        assert store.counts().get(State.QUEUED, 0) <= LOW_WATER
        tour.step(store, Control(home, store), speed=1.0)
        assert store.counts()[State.QUEUED] == 1 + len(WAVE)
        tour.step(store, Control(home, store), speed=1.0)  # no longer low: nothing more
        assert store.counts()[State.QUEUED] == 1 + len(WAVE)
        headless = Tour(home, tmp_path / "repo", waves=False)
        store.db.execute("UPDATE tasks SET state = 'succeeded'")
        store.db.commit()
        headless.step(store, Control(home, store), speed=1.0)
        assert store.counts().get(State.QUEUED, 0) == 0  # headless: one wave, then the end
    finally:
        store.close()
