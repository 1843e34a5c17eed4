"""Stepping into a task from the dashboard: `A` (and enter on a live terminal task) attaches
to its tmux session, `o` opens a shell in its worktree, `e` $EDITOR on it. The app suspends,
hands the terminal over, and comes back when the program ends or the person detaches.

The whole round trip runs in a real terminal: the dashboard itself runs inside a tmux
session of the test's own (standing in for the person's terminal), the agent in the
home's tmux server, and keys go in with `tmux send-keys`. Under Pilot (a headless driver,
which cannot suspend) the app says which command to run instead: those tests check that
command is exactly `kugetsu attach`'s.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kugetsu_tui.engine import terminal
from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.screens.detail import DetailScreen
from tests.helpers.harness import FAKE_AGENT, PY, WAIT, wait_until
from tests.helpers.tui import SLEEPER, DashboardHarness, wait_for

SIZE = (120, 30)
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="terminal agents need tmux")


def _with_terminal_agent(harness: DashboardHarness) -> None:
    harness.configure(
        agents={
            "sleeper": {"command": SLEEPER},
            "tty": {"command": [PY, FAKE_AGENT, "{prompt}"], "terminal": True},
        }
    )


def _notes(app: object) -> list[str]:
    return [n.message for n in app._notifications]  # type: ignore[attr-defined]


async def test_attach_on_a_task_without_a_terminal_says_so_and_enter_shows_details(
    harness: DashboardHarness,
) -> None:
    task = harness.add("a print-mode agent")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        app.dashboard.active.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("A")
        await wait_for(pilot, lambda: any("has no live terminal" in n for n in _notes(app)), "the notice")
        (note,) = [n for n in _notes(app) if "has no live terminal" in n]
        assert note == (
            f"task {task} (running) has no live terminal "
            "(expected a running task of an agent with terminal = true)"
        )
        assert app.screen is app.dashboard
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the details")


@needs_tmux
async def test_attach_where_the_app_cannot_suspend_names_the_attach_command(
    harness: DashboardHarness,
) -> None:
    _with_terminal_agent(harness)
    task = harness.add("ask", agent="tty")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: (t := harness.store.get(task)) and t.needs_input, "the agent to ask", WAIT
        )
        app.dashboard.active.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        command = shlex.join(terminal.attach_argv(harness.home.root, task))
        for key in ("A", "enter"):  # enter on a live terminal task attaches too
            app._notifications.clear()
            await pilot.press(key)
            await wait_for(pilot, lambda: any("run:" in n for n in _notes(app)), f"{key}'s notice")
            assert _notes(app)[-1].endswith(f"run: {command}"), _notes(app)
            assert app.screen is app.dashboard, key
        task_now = harness.store.get(task)
        assert task_now is not None and task_now.needs_input is None, "attaching answers the flag"


async def test_shell_and_editor_on_a_task_without_a_worktree_say_so(harness: DashboardHarness) -> None:
    task = harness.add("nothing to open", agent="failer", max_attempts=1)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.FAILED, "the task to fail")
        harness.store.update(task, time.time(), no_worktree=False)  # as if its worktree was removed
        app.dashboard.failed.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the failed task selected")
        await pilot.press("down", "up")  # a person who moved keeps the focus where they put it
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the failed task selected")
        for key in ("o", "e"):
            app._notifications.clear()
            await pilot.press(key)
            await wait_for(pilot, lambda: _notes(app), f"{key}'s notice")
            assert _notes(app)[-1].startswith(f"task {task} has no worktree left"), _notes(app)


async def test_editor_in_a_worktree_where_the_app_cannot_suspend_names_the_command(
    harness: DashboardHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = harness.add("open me", agent="failer", max_attempts=1)
    where = harness.root / "worktree of a task"
    where.mkdir()
    monkeypatch.setenv("EDITOR", "vi -R")
    monkeypatch.delenv("VISUAL", raising=False)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.FAILED, "the task to fail")
        harness.store.update(task, time.time(), no_worktree=False, worktree=str(where))
        app.dashboard.failed.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the failed task selected")
        await pilot.press("e")
        await wait_for(pilot, lambda: _notes(app), "the notice")
        quoted = shlex.quote(str(where))
        assert _notes(app)[-1].endswith(f"run: cd {quoted} && vi -R {quoted}"), _notes(app)


# --- in a real terminal -------------------------------------------------------------------


class OuterTerminal:
    """A tmux server of the test's own, its one pane the person's terminal."""

    def __init__(self, sock: Path, env: dict[str, str]) -> None:
        self.tmux = str(shutil.which("tmux"))
        self.sock = str(sock)
        self.env = {k: v for k, v in env.items() if k not in ("TMUX", "TMUX_PANE")}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.tmux, "-f", os.devnull, "-S", self.sock, *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=10)

    def screen(self) -> str:
        return self.run("capture-pane", "-p").stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", *keys)


def _select(outer: OuterTerminal, task: int) -> None:
    """Move the focus (tab) until the task is the selected one, as a person would: the log
    pane's title names the selected task."""
    for _ in range(6):
        try:
            wait_until(lambda: f"Log · task {task}" in outer.screen(), f"task {task} selected", 2.0)
            return
        except pytest.fail.Exception:
            outer.keys("Tab")
    raise AssertionError(f"task {task} never got selected:\n{outer.screen()}")


def _clients(home: Path) -> str:
    inner = [str(shutil.which("tmux")), "-S", str(terminal.socket_path(home)), "list-clients"]
    return subprocess.run(inner, capture_output=True, text=True).stdout.strip()


@needs_tmux
def test_A_hands_the_terminal_to_the_agent_and_the_dashboard_comes_back_on_detach(
    harness: DashboardHarness, tmp_path: Path
) -> None:
    _with_terminal_agent(harness)
    task = harness.add("ask", agent="tty")
    home = harness.home.root
    outer = OuterTerminal(tmp_path / "outer.sock", harness.env)
    dashboard = [PY, "-m", "kugetsu_tui", "--home", str(home)]
    outer.run("new-session", "-d", "-x", "110", "-y", "30", "--", *dashboard)
    try:
        wait_until(lambda: "1 need input" in outer.screen(), "the dashboard to show the asking agent", WAIT)
        _select(outer, task)
        outer.keys("A")
        wait_until(lambda: _clients(home), "the dashboard to attach to the agent's session")
        wait_until(lambda: "Proceed? [y/N]" in outer.screen() and "Active" not in outer.screen(),
                   "the agent's screen in place of the dashboard")  # fmt: skip

        # The person detaches (tmux's prefix + d does this): the dashboard comes back.
        inner = [outer.tmux, "-S", str(terminal.socket_path(home))]
        subprocess.run([*inner, "detach-client", "-s", f"={terminal.session_name(task)}"], check=True)
        wait_until(lambda: "Active 1/" in outer.screen(), "the dashboard back after the detach")
        assert harness.state(task) is State.RUNNING

        # In again, answer, and the dashboard is back once the agent's session ends.
        outer.keys("A")
        wait_until(lambda: _clients(home), "the second attach")
        wait_until(lambda: "Active" not in outer.screen(), "the agent's screen again")
        outer.keys("y", "Enter")
        wait_until(lambda: harness.state(task) is State.SUCCEEDED, "the answered agent to succeed", WAIT)
        wait_until(lambda: "Active 0/" in outer.screen(), "the dashboard back after the session ended")
        assert "answered 'y'" in harness.home.log_path(task).read_text()
    finally:
        outer.run("kill-server")
