"""The `/` filter finds queued tasks beyond the part of the queue the dashboard holds: the
store is asked (Store.search_queued, with a limit) and each match shows its real queue position."""

from __future__ import annotations

import time

from kugetsu_tui.engine.model import NewTask
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (120, 35)
QUEUED = 9_500
TARGET = 9_450  # its position, and its id: nothing was added before


def fill_queue(harness: DashboardHarness) -> int:
    def task(n: int) -> NewTask:
        prompt = "the zebra crossing task" if n == TARGET else f"routine chore {n}"
        return NewTask(prompt=prompt, agent="sleeper", repo=str(harness.root), no_worktree=True)

    ids = harness.store.add([task(n) for n in range(1, QUEUED + 1)], time.time())
    return ids[TARGET - 1]


async def test_the_filter_finds_a_queued_task_far_down_the_queue(harness: DashboardHarness) -> None:
    target = fill_queue(harness)
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.queued.row_count > 0, "the queue")
        await pilot.press("slash", *"ZEBRA", "enter")
        await wait_for(pilot, lambda: app.dashboard.queued.row_count == 1, "the one match")
        app.dashboard.queued.focus()
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == target, "the match selected")
        shown = "\n".join(screen_lines(app))
        assert f"Queued {QUEUED} · 1 match" in shown
        assert any(f"{TARGET}" in line and "zebra crossing" in line for line in screen_lines(app))
        await pilot.press("h")  # a key acts on the task found
        await wait_for(pilot, lambda: harness.store.get(target).held, "the hold")  # type: ignore[union-attr]


def test_search_queued_by_id_and_text_with_a_limit(harness: DashboardHarness) -> None:
    ids = [harness.add(f"chore {n}") for n in range(5)]
    store = harness.store
    assert store.search_queued("CHORE", 3) == ids[:3]
    assert store.search_queued(str(ids[4]), 10) == [ids[4]]
    assert store.search_queued("  ", 10) == []
    assert store.search_queued("nowhere", 10) == []
