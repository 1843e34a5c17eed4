"""The panes follow the store without losing the person's place, and stay small."""

from __future__ import annotations

import time

from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.model import NewTask, State
from kugetsu_tui.tui.board import QUEUE_WINDOW, BoardReader, SupervisorState
from tests.helpers.tui import DashboardHarness, wait_for

SIZE = (120, 35)


async def test_cursor_stays_on_its_task_while_rows_come_and_go(harness: DashboardHarness) -> None:
    ids = [harness.add(f"task number {n}") for n in range(5)]
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        queued = app.dashboard.queued
        await wait_for(pilot, lambda: app.focused is queued and queued.row_count == 5, "the queue")
        await pilot.press("down", "down")
        assert queued.cursor_task_id == ids[2]
        # A more urgent task arrives from another process: it sorts in above the cursor.
        urgent = harness.add("urgent", priority=9)
        await wait_for(pilot, lambda: queued.row_count == 6, "the new task")
        assert queued.cursor_task_id == ids[2] and queued.cursor_row == 3
        assert queued.cursor_task_id == app.dashboard.selected_task_id
        # Rows above it leave, and a cell of its own row changes.
        control = Control(harness.home, harness.store)
        control.cancel([ids[0], urgent])
        control.hold([ids[2]])
        await wait_for(pilot, lambda: queued.row_count == 4, "the cancels")
        await wait_for(pilot, lambda: "held" in str(queued.get_row_at(queued.cursor_row)), "the hold")
        assert queued.cursor_task_id == ids[2] and queued.cursor_row == 1


async def test_a_long_queue_shows_a_window_and_counts_the_rest(harness: DashboardHarness) -> None:
    total = 10_000
    new = [
        NewTask(prompt=f"task {n}", agent="sleeper", repo=str(harness.root), no_worktree=True)
        for n in range(total)
    ]
    harness.store.add(new, time.time())
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        queued = app.dashboard.queued
        await wait_for(pilot, lambda: queued.row_count == QUEUE_WINDOW, "the first rows")
        assert f"first {QUEUE_WINDOW} shown, {total - QUEUE_WINDOW} more" in str(queued.border_title)
        harness.store.transition(
            1,
            State.CANCELLED,
            now=time.time(),
            event="task_cancelled",  # type: ignore[arg-type]
            expect={State.QUEUED},
        )
        await wait_for(pilot, lambda: queued.cursor_task_id == 2, "the window to move on")
        assert queued.row_count == QUEUE_WINDOW


def test_board_reader_reads_only_what_changed(harness: DashboardHarness) -> None:
    first = harness.add("one")
    reader = BoardReader(harness.store)
    assert reader.poll()
    assert [t.id for t in reader.queued] == [first]
    assert not reader.poll()  # nothing committed since: no reads at all
    from kugetsu_tui.engine.store import Store

    other = Store(harness.home.db_path)  # another connection, as another process would be
    second = other.add([NewTask(prompt="two", agent="sleeper", repo=None)], time.time())[0]
    other.close()
    assert reader.poll()
    board = reader.board(cap=1, supervisor=SupervisorState(), now=time.time())
    assert [t.id for t in board.queued] == [first, second]
    assert board.queued_total == 2
    assert board.view.wait_reason[first].startswith("no supervisor")


def test_queued_tasks_show_dependency_limit_and_cooldown_reasons(harness: DashboardHarness) -> None:
    config = harness.configure(
        agents={"sleeper": {"command": ["true"], "max_live": 1}, "failer": {"command": ["true"]}}
    )
    running = harness.add("running")
    now = time.time()
    harness.store.admit(5, now)  # `running` takes a slot; its agent is at its limit of 1
    blocked = harness.add("same agent")
    later = harness.store.add([NewTask(prompt="after", agent="failer", repo=None, after=(running,))], now)[0]
    cooled = harness.add("cooling", agent="failer")
    reader = BoardReader(harness.store)
    reader.poll()
    board = reader.board(
        cap=5,
        now=now,
        config=config,
        supervisor=SupervisorState(here=True, pid=1, cooldowns={"failer": now + 60}),
    )
    reasons = board.view.wait_reason
    assert reasons[blocked] == "agent sleeper at its limit (1/1 live)"
    assert reasons[later] == f"waiting for task {running} (starting)"
    assert reasons[cooled].startswith("cooldown: failer until")


async def test_a_key_right_after_the_selected_task_left_does_not_act_on_its_neighbour(
    harness: DashboardHarness,
) -> None:
    harness.configure(cap=3)
    ids = [harness.add(f"running {n}") for n in range(3)]
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        active = app.dashboard.active
        await wait_for(pilot, lambda: all(harness.state(i) is State.RUNNING for i in ids), "3 running")
        active.focus()
        await wait_for(pilot, lambda: active.row_count == 3 and app.focused is active, "the Active pane")
        await pilot.press("up", "up")
        await pilot.press("down")
        assert app.dashboard.selected_task_id == ids[1]
        # Task 2 ends by another hand; the cursor falls on a neighbour just as `p` is pressed.
        Control(harness.home, harness.store).cancel([ids[1]])
        await wait_for(pilot, lambda: active.row_count == 2, "the cancelled task to leave")
        neighbour = app.dashboard.selected_task_id
        assert neighbour in (ids[0], ids[2])
        await pilot.press("p")
        notes = [n.message for n in app._notifications]
        assert notes[-1] == (
            f"task {ids[1]} just left this pane; the cursor is on task {neighbour} now: press again for it"
        )
        await pilot.pause(0.3)
        assert harness.state(neighbour) is State.RUNNING and harness.store.pending_requests() == []
        await pilot.press("p")  # now seen: the second press acts on it
        await wait_for(pilot, lambda: harness.state(neighbour) is State.PAUSED, "the neighbour paused")


async def test_the_cursor_follows_its_task_while_keys_and_refreshes_interleave(
    harness: DashboardHarness,
) -> None:
    ids = [harness.add(f"task number {n}") for n in range(8)]
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        queued = app.dashboard.queued
        await wait_for(pilot, lambda: app.focused is queued and queued.row_count == 8, "the queue")
        for step in range(1, 6):
            await pilot.press("down")
            at = queued.cursor_task_id
            harness.add(f"urgent {step}", priority=step)  # sorts in above the cursor
            await wait_for(pilot, lambda step=step: queued.row_count == 8 + step, "the urgent task")
            assert queued.cursor_task_id == at == app.dashboard.selected_task_id
            assert app.dashboard.log_pane.task_id == at
        assert queued.cursor_task_id == ids[5]
