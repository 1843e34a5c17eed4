"""Requeue with a note and an edited prompt (`r`), a new priority (`P`) and the full-screen
log with search (`L`), driven with Pilot against a real store.

The app does not supervise here, so a cancelled task stays cancelled and a queued one stays
queued until a key changes it; what changed is read back from the store.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Label, TextArea

from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.model import State
from kugetsu_tui.errors import UsageError
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.full_log import FullLogScreen
from kugetsu_tui.tui.screens.task_forms import PriorityScreen, RequeueScreen
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (120, 35)


def cancelled(harness: DashboardHarness, *prompts: str) -> list[int]:
    ids = [harness.add(prompt) for prompt in prompts]
    Control(harness.home, harness.store).cancel(ids)
    return ids


def events(harness: DashboardHarness, task_id: int, kind: str) -> list[dict[str, object]]:
    return [e.data for e in harness.store.events(task_id=task_id) if e.type == kind]


def error_shown(app: object) -> str:
    return str(app.screen.query_one("#form-error", Label).render())  # type: ignore[attr-defined]


async def test_r_opens_a_form_with_the_prompt_and_sends_a_note(harness: DashboardHarness) -> None:
    [task] = cancelled(harness, "fix the flaky test")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.failed.row_count == 1, "the Failed pane")
        app.dashboard.failed.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RequeueScreen), "the requeue form")
        assert app.screen.query_one(TextArea).text == "fix the flaky test"
        assert app.screen.query_one("#note", Input).value == ""
        assert "Requeue task" in "\n".join(screen_lines(app))
        await pilot.press(*"tests fail", "enter")
        await wait_for(pilot, lambda: harness.state(task) is State.QUEUED, "the requeue")
        stored = harness.store.get(task)
        assert stored is not None
        assert stored.prompt == "fix the flaky test\n\nNote for this attempt: tests fail"
        assert stored.requeue_note == "tests fail"
        assert not isinstance(app.screen, RequeueScreen)


async def test_requeue_with_an_edited_prompt_and_an_empty_one_refused(harness: DashboardHarness) -> None:
    [task] = cancelled(harness, "fix the flaky test")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.failed.row_count == 1, "the Failed pane")
        app.dashboard.failed.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RequeueScreen), "the requeue form")
        area = app.screen.query_one(TextArea)
        area.load_text("   ")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, RequeueScreen)  # still open, with what was typed
        assert "empty prompt" in error_shown(app)
        assert harness.state(task) is State.CANCELLED
        area.load_text("fix the flaky test in tests/test_io.py")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: harness.state(task) is State.QUEUED, "the requeue")
        stored = harness.store.get(task)
        assert stored is not None
        assert stored.prompt == "fix the flaky test in tests/test_io.py"


async def test_marked_tasks_requeue_after_one_question_without_the_form(harness: DashboardHarness) -> None:
    ids = cancelled(harness, "first", "second")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.failed.row_count == 2, "the Failed pane")
        app.dashboard.failed.focus()
        await pilot.press("space", "down", "space")
        await wait_for(pilot, lambda: len(app.dashboard.marked) == 2, "both marked")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: all(harness.state(i) is State.QUEUED for i in ids), "both requeued")
        assert [harness.store.get(i).prompt for i in ids] == ["first", "second"]  # type: ignore[union-attr]


async def test_P_sets_a_queued_tasks_priority(harness: DashboardHarness) -> None:
    task = harness.add("waits in the queue", priority=2)
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.queued.row_count == 1, "the queue")
        app.dashboard.queued.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, PriorityScreen), "the priority form")
        box = app.screen.query_one("#new-priority", Input)
        assert box.value == "2"
        box.value = "high"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PriorityScreen)
        assert "priority: expected" in error_shown(app) and "'high'" in error_shown(app)
        box.value = "7"
        await pilot.press("enter")
        await wait_for(pilot, lambda: harness.store.get(task).priority == 7, "the new priority")  # type: ignore[union-attr]
        assert events(harness, task, "task_priority_set")[-1]["was"] == 2
        assert harness.state(task) is State.QUEUED


async def test_P_on_a_task_not_queued_says_why(harness: DashboardHarness) -> None:
    [task] = cancelled(harness, "gone")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.failed.row_count == 1, "the Failed pane")
        app.dashboard.failed.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("P")
        await pilot.pause()
        assert not isinstance(app.screen, PriorityScreen)
        assert any("only queued tasks" in n.message for n in app._notifications)


def test_set_priority_checks_its_bounds_and_the_state(harness: DashboardHarness) -> None:
    control = Control(harness.home, harness.store)
    task = harness.add("waits")
    with pytest.raises(UsageError, match="priority: expected"):
        control.set_priority([task], 10**7)
    [outcome] = control.set_priority([task], -5)
    assert outcome.ok and harness.store.get(task).priority == -5  # type: ignore[union-attr]
    control.cancel([task])
    with pytest.raises(UsageError, match="only queued tasks"):
        control.set_priority([task], 1)


def test_requeue_refuses_an_empty_prompt_and_changes_nothing(harness: DashboardHarness) -> None:
    [task] = cancelled(harness, "as it was")
    control = Control(harness.home, harness.store)
    with pytest.raises(UsageError, match="empty prompt"):
        control.requeue([task], prompt=" \n")
    assert harness.state(task) is State.CANCELLED
    control.requeue([task], "mind the tests", prompt="as it is now")
    stored = harness.store.get(task)
    assert stored is not None
    assert stored.prompt == stored.requeue_note == "as it is now\n\nNote for this attempt: mind the tests"


async def test_L_opens_the_log_full_screen_with_search(harness: DashboardHarness) -> None:
    task = harness.add("chatty")
    log = harness.home.log_path(task)
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = ["── attempt 1 started ──"] + [f"step {n}" for n in range(1, 300)]
    lines[40] = "found a NEEDLE here"
    lines[250] = "another needle"
    log.write_text("\n".join(lines) + "\n")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("L")
        await wait_for(pilot, lambda: isinstance(app.screen, FullLogScreen), "the full log")
        screen = app.screen
        assert isinstance(screen, FullLogScreen)
        await wait_for(pilot, lambda: screen.pane.line_count == 300, "the whole log")
        assert screen.pane.lines[0] == "── attempt 1 started ──"
        await pilot.press("slash", *"needle", "enter")
        await wait_for(pilot, lambda: screen.found == (40, 8), "the first match")
        assert "match 1 of 2" in "\n".join(screen_lines(app))
        assert any("found a NEEDLE here" in line for line in screen_lines(app))
        await pilot.press("n")
        await wait_for(pilot, lambda: screen.found == (250, 8), "the next match")
        await pilot.press("n")
        await wait_for(pilot, lambda: screen.found == (40, 8), "the search wrapping round")
        await pilot.press("N")
        await wait_for(pilot, lambda: screen.found == (250, 8), "the match before")
        await pilot.press("slash", *"nowhere", "enter")
        await wait_for(pilot, lambda: "no match for 'nowhere'" in "\n".join(screen_lines(app)), "no match")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "back on the dashboard")
