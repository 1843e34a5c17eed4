"""The table of actions is the dashboard's one description of its keys: every action in it
is bound on the main screen, told on the help screen and found in the command palette,
as a person meets them in the running app."""

from __future__ import annotations

from textual.command import CommandPalette

from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.actions import ACTIONS, BY_ID, Action
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.help import HelpScreen
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (120, 40)


async def test_every_action_is_bound_on_the_main_screen(harness: DashboardHarness) -> None:
    harness.add("something to select")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.selected_task_id is not None, "a selection")
        await pilot.press("l")  # on the log nothing shadows the screen's keys (a table takes enter)
        assert app.focused is app.dashboard.log_pane
        bound = app.active_bindings
        for action in ACTIONS:
            for key in action.keys.split(","):
                assert key in bound, f"{action.id}: {key} is not bound"
                assert bound[key].binding.id == action.id, (
                    f"{key} runs {bound[key].binding.id}, not {action.id}"
                )
                assert bound[key].node is app.dashboard


async def test_every_action_is_on_the_help_screen(harness: DashboardHarness) -> None:
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        lines = screen_lines(app)
        for action in ACTIONS:
            row = BY_ID[action.help_in] if action.help_in else action
            (line,) = [line for line in lines if row.help in line]
            keys = line.split(row.help)[0].split("█")[-1].split()
            assert action.shown_key in keys or action.shown_key in row.help, (action.id, line)


async def test_every_action_is_in_the_command_palette(harness: DashboardHarness) -> None:
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        for action in ACTIONS:
            await pilot.press("ctrl+p")
            assert isinstance(app.screen, CommandPalette)
            await pilot.press(*action.title.split()[0])  # its first word finds it

            def offered(action: Action = action) -> bool:
                text = "\n".join(screen_lines(app))
                return action.title in text and f"{action.palette} ({action.shown_key})" in text

            await wait_for(pilot, offered, f"{action.title!r} in the palette")
            await pilot.press("escape")
            assert app.screen is app.dashboard


async def test_every_action_that_confirms_asks_first_and_n_changes_nothing(harness: DashboardHarness) -> None:
    task = harness.add("live, so every confirming action has something to ask about")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        confirming = [action for action in ACTIONS if action.confirms]
        assert confirming
        for action in confirming:
            await pilot.press(action.keys.split(",")[0])
            assert isinstance(app.screen, ConfirmScreen), action.id
            await pilot.press("n")
            assert app.screen is app.dashboard
        await pilot.pause(0.2)
        assert harness.state(task) is State.RUNNING
        assert harness.store.pending_requests() == []
        assert app.is_running


async def test_a_palette_command_runs_its_action(harness: DashboardHarness) -> None:
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p", *BY_ID["help"].title)
        await wait_for(pilot, lambda: BY_ID["help"].palette in "\n".join(screen_lines(app)), "the command")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
