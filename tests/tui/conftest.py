"""Harness for the dashboard's tests: private homes, real stores, real agents, fixed clocks.

Behaviour tests run the real app (`run_test()` + Pilot) against a real store in a
temporary KUGETSU_HOME, with a supervisor in the app's own loop and tiny real agents.
Snapshot tests get a deterministic board: a fixed clock, fixed machine readings, fixed
supervisor facts and a store written with fixed timestamps, in a home at a fixed path
(paths show on screen). Every agent process a test started is killed at teardown.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import EventType, NewTask, State
from kugetsu_tui.engine.store import Store
from kugetsu_tui.tui.app import KugetsuApp
from kugetsu_tui.tui.board import SupervisorState
from kugetsu_tui.tui.readings import MachineReading

# Times on screen are local: make them the same everywhere.
os.environ["TZ"] = "UTC"
time.tzset()

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
GIB = 2**30
MIB = 2**20
FIXED_MACHINE = MachineReading(
    cpu_percent=37.0,
    per_cpu=(12.0, 55.0, 80.0, 3.0, 41.0, 66.0, 20.0, 97.0),
    mem_total=16 * GIB,
    mem_available=int(9.5 * GIB),
    load=(2.10, 1.80, 1.50),
)
SLEEPER = ["sh", "-c", "echo working on task {task_id}; exec sleep 30"]
FAILER = ["sh", "-c", "echo 'error: 2 tests failed'; exit 3"]


def write_config(home: Home, *, cap: int = 2, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "default_agent": "sleeper",
        "capacity": {"cap": cap},
        "queue": {"retry_backoff": "30s", "kill_grace": "1s"},
        "agents": {"sleeper": {"command": SLEEPER}, "failer": {"command": FAILER}},
    }
    data.update(extra)
    home.config_path.write_bytes(tomli_w.dumps(data).encode())
    home.config_path.chmod(0o600)
    return load_config(home.config_path)


def fixed_machine() -> MachineReading:
    return FIXED_MACHINE


class Harness:
    """One home for one test, with a store of its own (the app opens another)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = Home(root / "home").ensure()
        self.config = write_config(self.home)
        self.store = Store(self.home.db_path)

    def configure(self, **kwargs: Any) -> Config:
        self.config = write_config(self.home, **kwargs)
        return self.config

    def add(self, prompt: str, *, agent: str = "sleeper", priority: int = 0, max_attempts: int = 3) -> int:
        new = NewTask(
            prompt=prompt,
            agent=agent,
            repo=str(self.root),
            no_worktree=True,
            priority=priority,
            max_attempts=max_attempts,
        )
        return self.store.add([new], time.time())[0]

    def state(self, task_id: int) -> State:
        task = self.store.get(task_id)
        assert task is not None
        return task.state

    def app(self, **kwargs: Any) -> KugetsuApp:
        options: dict[str, Any] = {
            "machine_sampler": fixed_machine,
            "sample_every": None,
            "refresh_every": 0.1,
        }
        options.update(kwargs)
        return KugetsuApp(self.home, self.config, **options)

    def kill_agents(self) -> None:
        """End every agent this home ever started, and reap those that were our children."""
        for task in self.store.tasks():
            if task.pid is None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(task.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(task.pid, 0)
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    try:
        yield made
    finally:
        made.kill_agents()


_SVG_TEXT = re.compile(r'<text [^>]*clip-path="url\(#terminal-(?:\d+-)?line-(\d+)\)">(.*?)</text>', re.DOTALL)


def screen_lines(app: KugetsuApp) -> list[str]:
    """What the terminal shows now, line by line, read from app.export_screenshot(): the
    very cells the app would write to a terminal (runs of background are left out)."""
    lines: dict[int, str] = {}
    for number, text in _SVG_TEXT.findall(app.export_screenshot()):
        shown = html.unescape(text).replace("\xa0", " ").rstrip("\n")
        lines[int(number)] = lines.get(int(number), "") + shown
    return [lines.get(n, "") for n in range(max(lines, default=-1) + 1)]


async def wait_for(pilot: Any, condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Let the app run until condition() holds; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


# --- the deterministic board for snapshots -----------------------------------------------

SNAPSHOT_ROOT = Path(tempfile.gettempdir()) / "kugetsu-tui-snapshot"


def seed_board(store: Store, home: Home) -> None:
    """Tasks in every pane, written with fixed timestamps."""
    repo = "/srv/demo/repo"
    prompts = [
        (0, "fix the flaky test in parser"),
        (0, "add a --json flag to the export command, with tests and a changelog entry"),
        (0, "profile the indexer and cut its memory"),
        (5, "hotfix: [urgent] restore the login page"),
        (0, "migrate the build to the new toolchain"),
        (0, "rename Session to Connection everywhere"),
        (0, "port the CSV reader to streaming"),
        (1, "add type hints to utils.py"),
        (0, "remove the dead feature flag"),
        (0, "speed up the test suite"),
        (0, "bump the minimum Python to 3.11"),
        (0, "write docs for the config loader"),
        (0, "add a changelog entry for 0.2"),
        (0, "update the copyright year"),
    ]
    ids = []
    for n, (priority, prompt) in enumerate(prompts):
        new = NewTask(
            prompt=prompt,
            agent="opencode" if n % 3 else "claude",
            repo=repo,
            priority=priority,
            max_attempts=3,
        )
        ids.append(store.add([new], T0 - 900 + n * 10)[0])

    def start(task_id: int, started: float, attempts: int = 1) -> None:
        store.transition(
            task_id,
            State.STARTING,
            now=started,
            event=EventType.TASK_DEQUEUED,
            attempts=attempts,
            started_at=started,
        )
        store.update(
            task_id, started, worktree=f"{home.root}/worktrees/{task_id}", branch=f"kugetsu/{task_id}"
        )

    def run(task_id: int, started: float, attempts: int = 1) -> None:
        start(task_id, started, attempts)
        store.transition(
            task_id,
            State.RUNNING,
            now=started + 1,
            event=EventType.TASK_STARTED,
            pid=4100 + task_id,
            pid_started=1.0,
        )

    def settle(task_id: int, state: State, event: EventType, ended: float, **changes: Any) -> None:
        store.transition(task_id, state, now=ended, event=event, ended_at=ended, **changes)

    # Active: running, paused, starting.
    run(ids[0], T0 - 125)
    run(ids[1], T0 - 3725, attempts=2)
    store.transition(ids[1], State.PAUSED, now=T0 - 60, event=EventType.TASK_PAUSED)
    start(ids[2], T0 - 2)
    store.record_usage(
        [
            (ids[0], {"cpu_seconds": 40.0, "rss": 612 * MIB, "cpu_percent": 87.0, "procs": 4}),
            (ids[1], {"cpu_seconds": 900.0, "rss": int(1.4 * GIB), "cpu_percent": 0.0, "procs": 7}),
        ],
        T0 - 1,
    )
    # Queued: one in backoff, one held, the rest waiting for the cap.
    run(ids[4], T0 - 300)
    store.transition(
        ids[4],
        State.QUEUED,
        now=T0 - 20,
        event=EventType.TASK_RETRYING,
        exit_code=1,
        reason="exit code 1",
        ended_at=T0 - 20,
        queued_at=T0 - 20,
        not_before=T0 + 40,
        pid=None,
        extra={"retry_in": 60},
    )
    store.transition(ids[5], State.QUEUED, now=T0 - 500, event=EventType.TASK_HELD, held=True)
    # Waiting on a dependency (the running task).
    store.add(
        [NewTask(prompt="write the release notes", agent="opencode", repo=repo, after=(ids[0],))], T0 - 30
    )
    # Failed, cancelled, expired.
    run(ids[9], T0 - 700, attempts=3)
    settle(ids[9], State.FAILED, EventType.TASK_ERROR, T0 - 610, exit_code=3, reason="exit code 3")
    run(ids[10], T0 - 650)
    settle(ids[10], State.CANCELLED, EventType.TASK_CANCELLED, T0 - 400, exit_code=-15, reason="cancelled")
    settle(ids[11], State.EXPIRED, EventType.TASK_EXPIRED, T0 - 200, reason="waited longer than 10m")
    # Done.
    for task_id in ids[12:]:
        run(task_id, T0 - 880)
        settle(task_id, State.SUCCEEDED, EventType.TASK_COMPLETED, T0 - 800, exit_code=0)
    for task_id, lines in (
        (
            ids[0],
            [
                "sim-agent: 'fix the flaky test in parser' (attempt 1)",
                "[1/5] reading the code…",
                "[2/5] planning the change…",
                "[3/5] editing files…",
            ],
        ),
        (ids[9], ["[1/5] reading the code…", "[4/5] running the tests…", "error: 2 tests failed"]),
    ):
        run_dir = home.run_dir(task_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "log").write_text("\n".join(lines) + "\n")


def snapshot_home(empty: bool = False) -> tuple[Home, Config]:
    """A fresh home at a fixed path, seeded unless `empty`."""
    shutil.rmtree(SNAPSHOT_ROOT, ignore_errors=True)
    home = Home(SNAPSHOT_ROOT / "home").ensure()
    config = write_config(home, cap=3)
    if not empty:
        store = Store(home.db_path)
        seed_board(store, home)
        store.close()
    return home, config


ATTACHED = SupervisorState(
    pid=4242,
    cap=3,
    cap_mode="suggest",
    suggested_cap=4,
    cap_reason="memory: 9.5 GiB available → 4",
    cooldowns={"claude": T0 + 95},
)


# What the empty state finds on PATH in snapshots: the same on every machine.
FIXED_PATH = {"sh": "/bin/sh", "claude": "/usr/local/bin/claude"}


def snapshot_app(*, empty: bool = False, probe: SupervisorState = ATTACHED) -> KugetsuApp:
    home, config = snapshot_home(empty)
    app = KugetsuApp(
        home, config, clock=lambda: T0, machine_sampler=fixed_machine, probe=lambda: probe, sample_every=None
    )
    app.find_agent = FIXED_PATH.get
    app.kugetsu_command = "kugetsu"
    return app
