"""Each key changes the engine's state as the CLI would, asserted through the store.

The app runs its own supervisor in Textual's loop and real (tiny) agents; the harness
kills every agent at teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.app import KugetsuApp
from kugetsu_tui.tui.board import SupervisorState
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.detail import DetailScreen
from kugetsu_tui.tui.screens.help import HelpScreen
from kugetsu_tui.tui.screens.new_task import NewTaskScreen
from tests.helpers.harness import make_repo
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (120, 35)


async def test_pause_then_resume_the_selected_task(harness: DashboardHarness) -> None:
    task = harness.add("sleep on it")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("p")
        await wait_for(pilot, lambda: harness.state(task) is State.PAUSED, "pause")
        await pilot.press("p")
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "resume")
        types = [e.type for e in harness.store.events(task_id=task)]
        assert "task_paused" in types and "task_resumed" in types


async def test_cancel_asks_first_and_y_cancels(harness: DashboardHarness) -> None:
    task = harness.add("to be cancelled")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert harness.state(task) is State.RUNNING  # nothing happens before the answer
        await pilot.press("y")
        await wait_for(pilot, lambda: harness.state(task) is State.CANCELLED, "the cancel")
        assert app.screen is app.dashboard


async def test_confirm_dialog_backs_out_on_n_and_escape(harness: DashboardHarness) -> None:
    task = harness.add("stays")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        for key in ("n", "escape"):
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press(key)
            assert app.screen is app.dashboard
        await pilot.pause(0.3)
        assert harness.state(task) is State.RUNNING
        assert harness.store.pending_requests() == []


async def test_a_key_that_acts_leaves_the_focus_free_to_follow_the_first_admission(
    harness: DashboardHarness,
) -> None:
    """At start the focus sits on the queue; pressing c (and backing out) is not moving, so
    when the task is admitted the focus still follows it into the Active pane."""
    task = harness.add("held until the dialog is closed")
    Control(harness.home, harness.store).hold([task])
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the queued task selected")
        assert app.focused is app.dashboard.queued
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        app.control.release([task])
        await wait_for(pilot, lambda: app.dashboard.active.row_count == 1, "the task in the Active pane")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the selection to follow it")
        assert app.focused is app.dashboard.active


async def test_a_key_that_moves_pins_the_focus(harness: DashboardHarness) -> None:
    task = harness.add("held")
    other = harness.add("held too")
    Control(harness.home, harness.store).hold([task, other])
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.queued.row_count == 2, "the queue")
        await pilot.press("down", "up")  # the person looked around the queue
        app.control.release([task])
        await wait_for(pilot, lambda: app.dashboard.active.row_count == 1, "the task in the Active pane")
        await pilot.pause(0.3)
        assert app.focused is app.dashboard.queued


@contextlib.asynccontextmanager
async def a_queued_task_selected(harness: DashboardHarness) -> AsyncIterator[tuple[KugetsuApp, Any, int]]:
    """One task runs (cap 1), one waits; the person tabs to the queue, on the waiting one."""
    harness.configure(cap=1)
    harness.add("runs")
    waiting = harness.add("waits")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.queued.row_count == 1, "the queue")
        # At start the focus follows the first running task for a moment; let it get there.
        await wait_for(pilot, lambda: app.focused is app.dashboard.active, "focus on the running task")
        await pilot.press("tab")  # Active -> Queued
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == waiting, "the queued task selected")
        yield app, pilot, waiting


async def test_cancel_a_queued_task(harness: DashboardHarness) -> None:
    async with a_queued_task_selected(harness) as (_, pilot, waiting):
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: harness.state(waiting) is State.CANCELLED, "the cancel")


async def test_hold_and_release_a_queued_task(harness: DashboardHarness) -> None:
    async with a_queued_task_selected(harness) as (_, pilot, waiting):
        await pilot.press("h")
        await wait_for(pilot, lambda: harness.store.get(waiting).held, "hold")  # type: ignore[union-attr]
        await pilot.press("h")
        await wait_for(pilot, lambda: not harness.store.get(waiting).held, "release")  # type: ignore[union-attr]
        assert harness.state(waiting) is State.QUEUED


async def test_requeue_a_failed_task(harness: DashboardHarness) -> None:
    task = harness.add("fails at once", agent="failer", max_attempts=1)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.FAILED, "the failure")
        await wait_for(pilot, lambda: app.dashboard.failed.row_count == 1, "the Failed pane")
        app.dashboard.failed.focus()
        await pilot.pause()
        assert "error: 2 tests failed" in str(app.dashboard.failed.get_row_at(0))
        await pilot.press("r")  # the form: the prompt as it was, no note
        await wait_for(pilot, lambda: app.screen is not app.dashboard, "the requeue form")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any(e.type == "task_requeued" for e in harness.store.events(task_id=task)),
            "the requeue",
        )


async def test_a_key_that_does_not_apply_says_why(harness: DashboardHarness) -> None:
    task = harness.add("running, so not requeueable")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("r")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("only" in m and "requeued" in m for m in messages), messages
        assert harness.state(task) is State.RUNNING


async def test_plus_and_minus_change_the_cap_in_config_and_supervisor(harness: DashboardHarness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.supervisor is not None and app.supervisor.store, "supervisor")
        await pilot.press("plus")
        await wait_for(pilot, lambda: app.supervisor is not None and app.supervisor.cap == 3, "cap 3")
        assert load_config(harness.home.config_path).cap == 3
        await pilot.press("minus", "minus")
        await wait_for(pilot, lambda: app.supervisor is not None and app.supervisor.cap == 1, "cap 1")
        assert load_config(harness.home.config_path).cap == 1
        await pilot.press("minus")  # never below 1
        await pilot.pause(0.2)
        assert load_config(harness.home.config_path).cap == 1


async def test_a_accepts_the_suggested_cap(harness: DashboardHarness) -> None:
    facts = SupervisorState(cap=2, suggested_cap=5)
    app = harness.app(probe=lambda: facts)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await pilot.pause(0.2)
        assert load_config(harness.home.config_path).cap == 5


async def test_new_task_form_queues_a_task(
    harness: DashboardHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(make_repo(tmp_path / "repo"))  # the form's repo: where we were started
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, NewTaskScreen)
        await pilot.press(*"add retries")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the form to close")
        (task,) = harness.store.tasks()
        assert task.prompt == "add retries" and task.state is State.QUEUED
        assert task.agent == harness.config.default_agent


async def test_new_task_form_refuses_an_empty_prompt_and_escape_adds_nothing(
    harness: DashboardHarness,
) -> None:
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "enter")
        assert isinstance(app.screen, NewTaskScreen)
        assert "empty prompt" in str(app.screen.query_one("#form-error").render())
        await pilot.press("escape")
        assert app.screen is app.dashboard
        assert harness.store.tasks() == []


async def test_enter_opens_details_and_question_mark_help(harness: DashboardHarness) -> None:
    harness.add("inspect me")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id is not None, "a selection")
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_details_show_the_command_the_supervisor_runs_for_a_prompt_on_stdin(
    harness: DashboardHarness,
) -> None:
    harness.configure(agents={"piped": {"command": ["cat"], "prompt_via": "stdin"}}, default_agent="piped")
    task = harness.add("a prompt that goes to stdin", agent="piped")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        lines = screen_lines(app)
        (at,) = [n for n, line in enumerate(lines) if "command  " in line]
        shown = " ".join(lines[at : at + 2])  # the path may fold onto the next line
        assert "command  cat <" in shown and f"/runs/{task}/prompt" in shown, shown
        assert "goes to stdin" not in shown  # the prompt travels on stdin, not in argv


async def test_filter_narrows_every_pane_and_escape_clears_it(harness: DashboardHarness) -> None:
    for prompt in ("alpha one", "beta two", "alpha three"):
        harness.add(prompt)
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.queued.row_count == 3, "the queue")
        await pilot.press("slash")
        await pilot.pause()
        await pilot.press(*"alpha", "plus")
        assert app.dashboard.filter_box.value == "alpha+"  # typed keys go to the box, not to +
        assert load_config(harness.home.config_path).cap == 2
        await pilot.press("backspace", "enter")
        await pilot.pause()
        assert app.dashboard.queued.row_count == 2
        await pilot.press("escape")
        await pilot.pause()
        assert app.dashboard.queued.row_count == 3


async def test_log_pane_follows_the_selected_task(harness: DashboardHarness) -> None:
    task = harness.add("talks")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        log = app.dashboard.log_pane
        await wait_for(pilot, lambda: f"working on task {task}" in "\n".join(log.lines), "its output")
        await pilot.press("l")
        assert app.focused is log
