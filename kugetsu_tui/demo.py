"""`kugetsu demo`: a sandbox home, a throwaway git repo and simulated agents.

Lets anyone see kugetsu-tui work without installing a coding agent. Each wave of tasks
shows what the tool does, through the real engine: tasks of mixed priority, one that fails
once and is retried, one that always fails, one whose agent hits a rate limit and cools
down, one that waits for two others (a dependency), one that never ends and is cancelled,
tasks that change files on their branch (to diff and merge later) and, where tmux is
installed, one in a terminal that stops to ask and waits for input (the tour answers it
after a while, unless the person attaches or sends an answer first). With the dashboard
the tour keeps going, a new wave whenever the queue runs low, until the person quits;
headless it runs one wave and ends.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import tomli_w

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import NewTask, State, Task
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError
from kugetsu_tui.first_run import kugetsu_command

# One wave: (priority, prompt, agent). The word before the colon tells the simulated agent
# what to do (see sim_agent.py). The first four succeed at once.
WAVE = (
    (0, "fix the off-by-one in the parser", "sim"),
    (5, "add a --json flag to the export command", "sim"),
    (0, "edit: rename Session to Connection everywhere", "sim"),
    (0, "write docs for the config loader", "sim"),
    (0, "flaky: speed up the test suite", "sim"),
    (2, "broken: migrate the build to the new toolchain", "sim"),
    (0, "rate: summarise the open issues", "sim-api"),
    (0, "endless: refactor the legacy module", "sim"),
    (0, "heavy: profile the indexer and cut its memory", "sim"),
    (0, "write the release notes", "sim"),  # after the first and third of its wave
    (1, "slow: port the CSV reader to streaming", "sim"),
    (0, "bump the minimum Python to 3.11", "sim"),
)
# Where tmux is installed, the wave's last task is this one instead: a terminal agent
# that asks, so the needs-input flag shows.
ASKING = (0, "ask: apply the schema migration", "sim-tty")
AFTER = {9: (0, 2)}  # position in the wave -> positions it waits for
ENDLESS_FOR = 6.0  # seconds (scaled by KUGETSU_DEMO_SPEED) an endless task runs before the cancel
# Seconds (scaled) the tour leaves a question unanswered: with the dashboard, time to
# see the flag and step in (A); headless, just long enough to show it.
ANSWER_AFTER = {"dashboard": 30.0, "headless": 4.0}
LOW_WATER = 2  # with the dashboard: a new wave once no more than this many are queued or live

HeadlessRun = Callable[..., int]  # headless.run_headless, given by the entry point
DashboardRun = Callable[..., int]  # tui.app.run_dashboard, likewise: one face does not import another


def demo_speed() -> float:
    try:
        return max(float(os.environ.get("KUGETSU_DEMO_SPEED", "1.0")), 0.001)
    except ValueError:
        return 1.0


def wave() -> tuple[tuple[int, str, str], ...]:
    return (*WAVE[:-1], ASKING) if shutil.which("tmux") else WAVE


def make_repo(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "README.md").write_text("# demo project\n")
    (where / "app.py").write_text("class Session:\n    pass\n\n\nprint('hello')\n")

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
    sim = [sys.executable, "-m", "kugetsu_tui.sim_agent", "{prompt}"]
    cooldown = max(round(10 * demo_speed()), 1)
    config = {
        "default_agent": "sim",
        "capacity": {"cap": 3},
        "queue": {"retry_backoff": "2s", "kill_grace": "3s"},
        "agents": {
            "sim": {"command": sim},
            # An agent whose provider rate-limits it: a matching failure is not counted,
            # the agent cools down while the other keeps running.
            "sim-api": {"command": sim, "rate_limit": ["rate limit"], "cooldown": f"{cooldown}s"},
            # Runs in a terminal (tmux) a person can attach to; it stops to ask.
            "sim-tty": {"command": sim, "terminal": True},
        },
    }
    home.config_path.write_bytes(tomli_w.dumps(config).encode())
    home.config_path.chmod(0o600)
    store = Store(home.db_path)
    try:
        add_wave(Control(home, store), repo, tasks)
    finally:
        store.close()
    return home


def add_wave(control: Control, repo: Path, tasks: int) -> list[int]:
    """Queue `tasks` tasks of the wave (cycling through it), dependencies included."""
    ids: list[int] = []
    tasks_of = wave()
    for n in range(tasks):
        start, place = n - n % len(tasks_of), n % len(tasks_of)
        priority, prompt, agent = tasks_of[place]
        after = tuple(ids[start + p] for p in AFTER.get(place, ()))
        new = NewTask(
            prompt=prompt, agent=agent, repo=str(repo), priority=priority, max_attempts=3, after=after
        )
        ids += control.add([new])
    return ids


class Tour(threading.Thread):
    """Keeps the demo going beside the supervisor: cancels each endless task once it has
    run a while and, with `waves`, queues a new wave whenever the queue runs low. Acts
    through Control on a store connection of its own, as another terminal would."""

    def __init__(self, home: Home, repo: Path, *, waves: bool) -> None:
        super().__init__(name="kugetsu-demo-tour", daemon=True)
        self.home, self.repo, self.waves = home, repo, waves
        self.done = threading.Event()
        self.asked: dict[int, float] = {}  # task -> when the tour first saw it need input

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)

    def run(self) -> None:
        speed = demo_speed()
        store = Store(self.home.db_path)
        control = Control(self.home, store)
        try:
            while not self.done.wait(min(0.5 * speed, 0.5)):
                self.step(store, control, speed)
        except Exception as err:  # the tour is a guide, never a reason for the demo to fail
            print(f"kugetsu demo: the tour stopped: {printable(repr(err))}", file=sys.stderr)
        finally:
            store.close()

    def step(self, store: Store, control: Control, speed: float) -> None:
        import time

        now = time.time()
        live = store.live()
        for task in live:
            ran = now - (task.started_at or now)
            if (
                task.prompt.startswith("endless:")
                and task.state is State.RUNNING
                and ran >= ENDLESS_FOR * speed
            ):
                control.cancel([task.id])
        self.answer(live, control, now, speed)
        if self.waves and len(live) + store.counts().get(State.QUEUED, 0) <= LOW_WATER:
            add_wave(control, self.repo, len(WAVE))

    def answer(self, live: list[Task], control: Control, now: float, speed: float) -> None:
        """Answer a question nobody answered within ANSWER_AFTER, as a person would."""
        wait = ANSWER_AFTER["dashboard" if self.waves else "headless"] * speed
        for task in live:
            if task.needs_input is None or task.state is not State.RUNNING:
                self.asked.pop(task.id, None)
                continue
            since = self.asked.setdefault(task.id, now)
            if task.prompt.startswith("ask:") and now - since >= wait:
                with contextlib.suppress(UsageError):  # (it ended meanwhile)
                    control.send(task.id, "y", by="demo")
                self.asked.pop(task.id, None)


def sandbox_root(home: Path | None) -> Path:
    return home or Path(tempfile.mkdtemp(prefix="kugetsu-demo-"))


def run_dashboard_demo(*, home: Path | None, tasks: int, run_dashboard: DashboardRun) -> int:
    """The demo in the dashboard: the tour keeps going until the person quits."""
    root = sandbox_root(home)
    sandbox = prepare(root, tasks)
    tour = Tour(sandbox, root / "repo", waves=True)
    tour.start()
    try:
        code = run_dashboard(sandbox, load_config(sandbox.config_path))
    finally:
        tour.stop()
    again = f"{kugetsu_command()} --home {shlex.quote(str(sandbox.root))}"
    print(f"kugetsu demo: the sandbox stays in {printable(str(root))}; look again with  {printable(again)}")
    return code


def run_demo(
    *, home: Path | None, headless: bool, tasks: int, as_json: bool, run_headless: HeadlessRun
) -> int:
    """One wave, run to the end by `run_headless`."""
    root = sandbox_root(home)
    sandbox = prepare(root, tasks)
    config = load_config(sandbox.config_path)
    if not as_json:
        where = printable(str(root))
        print(f"kugetsu demo: sandbox in {where} ({tasks} simulated tasks, cap {config.cap})", flush=True)
    tour = Tour(sandbox, root / "repo", waves=False)
    tour.start()
    try:
        code = run_headless(sandbox, config, forever=False, as_json=as_json)
    finally:
        tour.stop()
    if not as_json:
        again = f"{kugetsu_command()} status --home {shlex.quote(str(sandbox.root))}"
        print(f"kugetsu demo: done; look around with  {printable(again)}")
    # The demo has failures on purpose; it went well if the run itself worked.
    return 0 if code in (0, 1) else code
