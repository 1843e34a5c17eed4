"""The deterministic board for snapshot tests: a fixed clock, fixed machine readings,
fixed supervisor facts and a store written with fixed timestamps, in a home at a fixed
path (paths show on screen)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import EventType, NewTask, State
from kugetsu_tui.engine.store import Store
from kugetsu_tui.tui.app import KugetsuApp
from kugetsu_tui.tui.board import SupervisorState
from tests.helpers.tui import GIB, MIB, T0, fixed_machine, write_config

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
