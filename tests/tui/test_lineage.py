"""Lineage on the dashboard: a task added from inside another task's run (a planner's
child) is marked with its parent's id, the detail view names parent and children, and
cancelling a parent offers to cancel its unfinished children too."""

from __future__ import annotations

import re
import time

from kugetsu_tui.engine.model import NewTask, State
from kugetsu_tui.tui.screens.confirm import ChoiceScreen
from kugetsu_tui.tui.screens.detail import DetailScreen
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (120, 35)


def add_child(harness: DashboardHarness, parent: int, prompt: str) -> int:
    new = NewTask(prompt=prompt, agent="sleeper", repo=str(harness.root), no_worktree=True, parent=parent)
    return harness.store.add([new], time.time())[0]


async def test_children_are_marked_and_the_details_name_parent_and_children(
    harness: DashboardHarness,
) -> None:
    harness.configure(cap=1)
    planner = harness.add("plan the work")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(planner) is State.RUNNING, "the planner to run")
        kids = [add_child(harness, planner, f"part {n}") for n in (1, 2)]
        queued = app.dashboard.queued
        await wait_for(pilot, lambda: queued.row_count == 2, "the children queued")
        text = "\n".join(screen_lines(app))
        assert f"↳ {planner} part 1" in text and f"↳ {planner} part 2" in text
        queued.focus()
        await wait_for(pilot, lambda: app.focused is queued, "the Queued pane focused")
        await pilot.press("down", "up")  # a person who moved keeps the focus where they put it
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == kids[0], "the first child selected")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the child's details")
        assert re.search(rf"parent *task {planner}\b", "\n".join(screen_lines(app)))
        await pilot.press("escape")
        app.dashboard.active.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == planner, "the planner selected")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the planner's details")
        found = rf"children *{kids[0]} · queued, {kids[1]} · queued"
        assert re.search(found, "\n".join(screen_lines(app)))


async def test_cancelling_a_parent_offers_to_cancel_its_children(harness: DashboardHarness) -> None:
    harness.configure(cap=2)
    first, second = harness.add("planner one"), harness.add("planner two")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        active = app.dashboard.active
        await wait_for(pilot, lambda: harness.state(second) is State.RUNNING, "both planners")
        active.focus()
        await wait_for(pilot, lambda: active.row_count == 2 and app.focused is active, "both planners shown")
        first_kids = [add_child(harness, first, f"one's part {n}") for n in (1, 2)]
        second_kids = [add_child(harness, second, f"two's part {n}") for n in (1, 2, 3)]
        await wait_for(pilot, lambda: app.dashboard.queued.row_count == 5, "the children queued")

        await pilot.press("up", "up")
        assert app.dashboard.selected_task_id == first
        await pilot.press("c")
        assert isinstance(app.screen, ChoiceScreen)
        text = "\n".join(screen_lines(app))
        assert f"Cancel task {first}? It has 2 children not finished." in text
        assert f"Its children (queued or live): {first_kids[0]}, {first_kids[1]}." in text
        await pilot.press("y")  # only the planner
        await wait_for(pilot, lambda: harness.state(first) is State.CANCELLED, "the first planner cancelled")
        assert all(not harness.state(kid).is_settled for kid in first_kids)

        await wait_for(pilot, lambda: active.cursor_task_id == second, "the second planner selected")
        await pilot.press("up")  # seen: the key is meant for it
        await pilot.press("c")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("a")  # the planner and its children
        await wait_for(
            pilot,
            lambda: all(harness.state(t) is State.CANCELLED for t in (second, *second_kids)),
            "the second planner and its children cancelled",
        )


async def test_cancelling_a_task_without_children_asks_yes_or_no(harness: DashboardHarness) -> None:
    from kugetsu_tui.tui.screens.confirm import ConfirmScreen

    task = harness.add("no children here")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
