"""The footer names the keys that act where the focus is (and those that act anywhere),
whole at 80 columns; every key still works in every pane."""

from __future__ import annotations

from kugetsu_tui.engine.model import State
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

ANYWHERE = ("n new", "+-cap", "/ filter", "? help", "q quit")  # (margins are not read back)


async def test_the_footer_follows_the_focused_pane(harness: DashboardHarness) -> None:
    harness.configure(cap=1)
    running = harness.add("runs")
    harness.add("waits")
    failed = harness.add("fails", agent="failer", max_attempts=1)
    app = harness.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: harness.state(failed) is State.FAILED or harness.state(running)
                       is State.RUNNING, "the agents")  # fmt: skip
        dash = app.dashboard
        expected = {
            dash.active: (("p pause", "c cancel", "A attach"), ("r requeue", "h hold", "f kinds")),
            dash.queued: (("c cancel", "h hold"), ("p pause", "r requeue", "A attach")),
            dash.failed: (("r requeue", "d diff", "f kinds"), ("p pause", "c cancel", "h hold")),
            dash.log_pane: ((), ("p pause", "c cancel", "r requeue", "h hold")),
        }
        for pane, (shown, hidden) in expected.items():
            pane.focus()

            def footer() -> str:
                return screen_lines(app)[-1]

            await wait_for(pilot, lambda shown=shown: all(k in footer() for k in shown), f"{pane.id}'s keys")
            await pilot.pause(0.1)
            line = footer()
            assert all(key in line for key in ANYWHERE), (pane.id, line)
            assert not any(key in line for key in hidden), (pane.id, line)


async def test_the_footer_is_empty_while_a_dialog_is_in_front(harness: DashboardHarness) -> None:
    harness.add("queued, to be asked about")
    app = harness.app(supervise=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id is not None, "a selection")
        await wait_for(pilot, lambda: "c cancel" in screen_lines(app)[-1], "the footer")
        await pilot.press("c")
        await wait_for(pilot, lambda: "cancel" not in screen_lines(app)[-1], "the footer to empty")
        assert "q quit" not in screen_lines(app)[-1]
        await pilot.press("n")
        await wait_for(pilot, lambda: "c cancel" in screen_lines(app)[-1], "the footer back")
