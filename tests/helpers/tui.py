"""The dashboard's harness: private homes, real stores, real agents, fixed machine readings.

Behaviour tests run the real app (`run_test()` + Pilot) against a real store in a
temporary KUGETSU_HOME, with a supervisor in the app's own loop and tiny real agents.
Every agent process a test started is killed at teardown. Also: reading the screen as
text (screen_lines) and polling inside a running app (wait_for).
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import NewTask, State
from kugetsu_tui.engine.store import Store
from kugetsu_tui.tui.app import KugetsuApp
from kugetsu_tui.tui.readings import MachineReading
from tests.helpers.harness import Kugetsu, write_toml

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


def dashboard_config(*, cap: int = 2, **extra: Any) -> dict[str, Any]:
    """The dashboard tests' config: tiny shell agents, a long backoff; `extra` replaces
    whole sections."""
    data: dict[str, Any] = {
        "default_agent": "sleeper",
        "capacity": {"cap": cap},
        "queue": {"retry_backoff": "30s", "kill_grace": "1s"},
        "agents": {"sleeper": {"command": SLEEPER}, "failer": {"command": FAILER}},
    }
    data.update(extra)
    return data


def write_config(home: Home, *, cap: int = 2, **extra: Any) -> Config:
    write_toml(home.config_path, dashboard_config(cap=cap, **extra))
    return load_config(home.config_path)


def fixed_machine() -> MachineReading:
    return FIXED_MACHINE


class DashboardHarness(Kugetsu):
    """The harness for one dashboard test: the same home and config file, opened as the
    engine's Home and Config, with a store of its own (the app opens another). The app
    runs its supervisor in this process, so agents are ended by their pids, not by token."""

    merge_sections = False  # as the dashboard's tests were written: a section given is whole

    home: Home  # type: ignore[assignment]
    config: Config  # type: ignore[assignment]

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.home = Home(root / "home").ensure()
        self.config = load_config(self.config_path)
        self.store = Store(self.home.db_path)

    def default_config(self) -> dict[str, Any]:
        return dashboard_config()

    def configure(self, *, cap: int = 2, **extra: Any) -> Config:
        self.write_config(**dashboard_config(cap=cap, **extra))
        self.config = load_config(self.config_path)
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

    def cleanup(self) -> None:
        self.kill_agents()
        self.end_supervisors()


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
