"""The first run: `kugetsu` on an empty home shows what a person can do next, and the
new-task form offers an agent that is installed."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.tui.board import SupervisorState
from kugetsu_tui.tui.screens.new_task import NewTaskScreen
from tests.helpers.snapshots import snapshot_app
from tests.helpers.tui import DashboardHarness as Harness
from tests.helpers.tui import screen_lines, wait_for

SIZE = (120, 35)
ONLY_CLAUDE = {"claude": "/opt/agents/bin/claude"}


async def test_an_empty_home_says_what_to_do_next(harness: Harness) -> None:
    # A fresh home: the built-in agents only, the default (opencode) not installed.
    harness.home.config_path.write_text("")
    harness.config = load_config(harness.home.config_path)
    app = harness.app(probe=SupervisorState)
    app.find_agent = ONLY_CLAUDE.get
    app.kugetsu_command = "/srv/venv/bin/kugetsu"
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.empty_state.display, "the empty state")
        await pilot.pause()
        shown = "\n".join(screen_lines(app))
        assert "✓ claude" in shown
        for missing in ("opencode", "codex", "aider"):
            assert f"✗ {missing}" in shown
        assert "default_agent opencode is not on PATH; n offers claude" in shown
        assert "/srv/venv/bin/kugetsu demo" in shown  # a command that works from here
        assert '/srv/venv/bin/kugetsu add --agent claude "fix the flaky test"' in shown
        assert str(harness.home.config_path) in shown

        # The form's agent is one found on PATH, not the configured default.
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewTaskScreen), "the new-task form")
        assert app.screen.query_one("#agent", Select).value == "claude"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the form to close")

        # Once something is queued, the help makes way for the queue.
        harness.add("the first real task")
        await wait_for(pilot, lambda: not app.dashboard.empty_state.display, "the empty state to go")
        await pilot.pause()
        assert "Nothing queued or running yet" not in "\n".join(screen_lines(app))


async def test_the_configured_default_is_offered_when_it_is_installed(harness: Harness) -> None:
    app = harness.app(probe=SupervisorState)
    app.find_agent = {"sh": "/bin/sh", **ONLY_CLAUDE}.get  # the harness's agents run sh
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.dashboard.empty_state.display, "the empty state")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewTaskScreen), "the new-task form")
        assert app.screen.query_one("#agent", Select).value == "sleeper"


def test_empty_state_default_not_installed(snap_compare: Any) -> None:
    app = snapshot_app(empty=True, probe=SupervisorState())
    app.find_agent = ONLY_CLAUDE.get

    async def settle(pilot: Pilot[Any]) -> None:
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=settle)
