"""Marks: space marks rows; cancel, requeue, merge and discard then act on every marked
task in sight after one question naming how many; escape drops the marks."""

from __future__ import annotations

from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (120, 35)


def _question(app: object) -> str:
    return "\n".join(screen_lines(app))  # type: ignore[arg-type]


async def test_space_marks_and_cancel_asks_once_for_all_marked(harness: DashboardHarness) -> None:
    ids = [harness.add(f"queued {n}") for n in range(4)]
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        queued = app.dashboard.queued
        await wait_for(pilot, lambda: app.focused is queued and queued.row_count == 4, "the queue")
        await pilot.press("space", "space", "down", "space")  # marks 1, 2 and 4; moves on each time
        assert app.dashboard.marked == {ids[0], ids[1], ids[3]}
        assert [str(queued.get_row_at(n)[1]) for n in range(4)] == [
            f"●{ids[0]}",
            f"●{ids[1]}",
            str(ids[2]),
            f"●{ids[3]}",
        ]
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        text = _question(app)
        assert "Cancel 3 marked tasks?" in text and f"Tasks {ids[0]}, {ids[1]}, {ids[3]}." in text
        await pilot.press("y")
        await wait_for(pilot, lambda: harness.state(ids[3]) is State.CANCELLED, "the cancels")
        assert [harness.state(i) for i in ids] == [State.CANCELLED] * 2 + [State.QUEUED, State.CANCELLED]
        await wait_for(pilot, lambda: not app.dashboard.marked, "the marks to go")


async def test_space_again_unmarks_and_escape_drops_every_mark(harness: DashboardHarness) -> None:
    ids = [harness.add(f"queued {n}") for n in range(3)]
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        queued = app.dashboard.queued
        await wait_for(pilot, lambda: app.focused is queued and queued.row_count == 3, "the queue")
        await pilot.press("space", "up", "space")
        assert not app.dashboard.marked and str(queued.get_row_at(0)[1]) == str(ids[0])
        await pilot.press("up", "space", "space")
        assert app.dashboard.marked == {ids[0], ids[1]}
        await pilot.press("escape")
        assert not app.dashboard.marked
        assert all(str(queued.get_row_at(n)[1]) == str(ids[n]) for n in range(3))
        await pilot.press("c")  # no marks: the selected task alone
        assert isinstance(app.screen, ConfirmScreen)
        assert f"Cancel task {ids[2]}?" in _question(app)
        await pilot.press("n")


async def test_requeue_and_discard_act_on_every_marked_failed_task(harness: DashboardHarness) -> None:
    ids = [harness.add(f"fails {n}", agent="failer", max_attempts=1) for n in range(3)]
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        failed = app.dashboard.failed
        await wait_for(pilot, lambda: failed.row_count == 3, "three failed tasks")
        failed.focus()
        await wait_for(pilot, lambda: app.focused is failed, "the Failed pane focused")
        await pilot.press("up", "up", "up", "space", "space")
        marked = set(app.dashboard.marked)
        assert len(marked) == 2
        await pilot.press("x")
        assert "Discard 2 marked tasks?" in _question(app)
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: all((t := harness.store.get(i)) and t.review == "discarded" for i in marked),
            "discards",
        )
        left = next(i for i in ids if i not in marked)
        assert (t := harness.store.get(left)) is not None and t.review != "discarded"
        await wait_for(pilot, lambda: not app.dashboard.marked, "the marks to go")

        await pilot.press("up", "up", "up", "space", "space", "space")
        assert app.dashboard.marked == set(ids)
        await pilot.press("r")
        assert "Requeue 3 marked tasks?" in _question(app)
        await pilot.press("y")
        requeued = lambda: all(  # noqa: E731
            any(e.type == "task_requeued" for e in harness.store.events(task_id=i)) for i in ids
        )
        await wait_for(pilot, requeued, "every marked task requeued")
