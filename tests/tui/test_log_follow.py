"""The log pane keeps following its task's output at 80×24 while the panes above it grow
and shrink (a pane that shrinks under it must not leave it stuck above the end), and
stops following only when the person scrolls up."""

from __future__ import annotations

from kugetsu_tui.engine.model import State
from tests.helpers.tui import SLEEPER, DashboardHarness, screen_lines, wait_for

STEPS = 80
STEPPER = ["sh", "-c", f"for i in $(seq 1 {STEPS}); do echo step $i of {STEPS}; sleep 0.05; done; sleep 30"]


def _last_shown(app: object) -> str:
    lines = screen_lines(app)  # type: ignore[arg-type]
    start = next(n for n, line in enumerate(lines) if line.startswith("─Log"))
    shown = [line for line in lines[start + 1 : -1] if line.strip()]
    return shown[-1] if shown else ""


async def test_the_log_follows_at_80x24_while_the_active_pane_grows(harness: DashboardHarness) -> None:
    harness.configure(cap=4, agents={"sleeper": {"command": SLEEPER}, "stepper": {"command": STEPPER}})
    task = harness.add("steps", agent="stepper")
    app = harness.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the stepper selected")
        log = app.dashboard.log_pane
        await wait_for(pilot, lambda: len(log.lines) >= 3, "its first steps")
        others = [harness.add(f"arrives {n}") for n in range(3)]  # the Active pane grows by 3 rows
        await wait_for(pilot, lambda: all(harness.state(t) is State.RUNNING for t in others), "the others")
        await wait_for(pilot, lambda: f"step {STEPS} of {STEPS}" in "\n".join(log.lines), "the last step")
        await wait_for(pilot, lambda: _last_shown(app).startswith(f"step {STEPS} of {STEPS}"), "it on screen")
        assert log.is_vertical_scroll_end


async def test_the_log_stops_following_when_the_person_scrolls_up(harness: DashboardHarness) -> None:
    harness.configure(cap=1, agents={"sleeper": {"command": SLEEPER}, "stepper": {"command": STEPPER}})
    task = harness.add("steps", agent="stepper")
    app = harness.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the stepper selected")
        log = app.dashboard.log_pane
        await wait_for(pilot, lambda: log.max_scroll_y > 5, "more steps than the pane shows")
        await pilot.press("l", "pageup")
        held = log.scroll_y
        assert not log.is_vertical_scroll_end
        await wait_for(pilot, lambda: f"step {STEPS} of {STEPS}" in "\n".join(log.lines), "the last step")
        assert log.scroll_y == held  # left where the person put it
        await pilot.press("end")
        await wait_for(pilot, lambda: _last_shown(app).startswith(f"step {STEPS} of {STEPS}"), "the end")
