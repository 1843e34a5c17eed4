"""`kugetsu demo`: a sandbox home, a throwaway git repo and simulated agents.

Lets anyone see kugetsu-tui work without installing a coding agent: a dozen tasks of
mixed priority, some that fail once and retry, one that always fails, one that is
cancelled, all through the real engine.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import tomli_w

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import NewTask
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.text import printable
from kugetsu_tui.present import kugetsu_command

PROMPTS = (
    (0, "fix the flaky test in parser"),
    (5, "add a --json flag to the export command"),
    (0, "heavy: profile the indexer and cut its memory"),
    (0, "write docs for the config loader"),
    (2, "broken: migrate the build to the new toolchain"),
    (0, "rename Session to Connection everywhere"),
    (0, "slow: port the CSV reader to streaming"),
    (1, "add type hints to utils.py"),
    (0, "remove the dead feature flag"),
    (0, "flaky: speed up the test suite"),
    (0, "bump the minimum Python to 3.11"),
    (0, "add a changelog entry for 0.2"),
)


def make_repo(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "README.md").write_text("# demo project\n")
    (where / "app.py").write_text("print('hello')\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=where, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("-c", "user.name=kugetsu demo", "-c", "user.email=demo@localhost", "commit", "-q", "-m", "start")
    return where


def prepare(root: Path, tasks: int) -> Home:
    """Make the sandbox under root: a home with a config and a queue, and a repo."""
    home = Home(root / "home").ensure()
    repo = make_repo(root / "repo")
    config = {
        "default_agent": "sim",
        "capacity": {"cap": 3},
        "queue": {"retry_backoff": "2s", "kill_grace": "3s"},
        "agents": {"sim": {"command": [sys.executable, "-m", "kugetsu_tui.sim_agent", "{prompt}"]}},
    }
    home.config_path.write_bytes(tomli_w.dumps(config).encode())
    home.config_path.chmod(0o600)
    store = Store(home.db_path)
    new = [
        NewTask(
            prompt=PROMPTS[i % len(PROMPTS)][1],
            agent="sim",
            repo=str(repo),
            priority=PROMPTS[i % len(PROMPTS)][0],
            max_attempts=3,
        )
        for i in range(tasks)
    ]
    Control(home, store).add(new)
    store.close()
    return home


def run_demo(*, home: Path | None, headless: bool, tasks: int, as_json: bool) -> int:
    from kugetsu_tui.headless import run_headless

    root = home or Path(tempfile.mkdtemp(prefix="kugetsu-demo-"))
    sandbox = prepare(root, tasks)
    config = load_config(sandbox.config_path)
    if not as_json:
        where = printable(str(root))
        print(f"kugetsu demo: sandbox in {where} ({tasks} simulated tasks, cap {config.cap})", flush=True)
    code = run_headless(sandbox, config, forever=False, as_json=as_json)
    if not as_json:
        again = f"{kugetsu_command()} status --home {shlex.quote(str(sandbox.root))}"
        print(f"kugetsu demo: done; look around with  {printable(again)}")
    # The demo has failures on purpose; it went well if the run itself worked.
    return 0 if code in (0, 1) else code
