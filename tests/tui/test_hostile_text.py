"""Text from outside never reaches the terminal raw: a prompt and an agent's output that
carry escape sequences, a BEL and a bidi override are shown in every pane, the detail view,
a dialog and a notification as harmless visible text, with the agent's colours kept as
styles. Asserted on what the app renders (export_screenshot, the log pane's strips)."""

from __future__ import annotations

from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.detail import DetailScreen
from tests.helpers.tui import DashboardHarness, screen_lines, wait_for

SIZE = (150, 40)
PROMPT = "hello\x1b]0;owned\x07\x1b[2Jbye\x1b[31mRED \u202eevil"
# The agent retitles the terminal, clears it, prints in red and reorders with a bidi override.
HOSTILE = [
    "sh",
    "-c",
    r"printf 'out\033]0;OWNED\007\033[2Jput \033[31mcrimson\033[0m \342\200\256reversed\n'; exec sleep 30",
]
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def assert_harmless(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the screen"


async def test_a_hostile_prompt_and_log_reach_the_screen_only_as_visible_text(
    harness: DashboardHarness,
) -> None:
    harness.configure(agents={"hostile": {"command": HOSTILE}}, default_agent="hostile")
    task = harness.add(PROMPT, agent="hostile")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
        log = app.dashboard.log_pane
        await wait_for(pilot, lambda: any("crimson" in line for line in log.lines), "its output in the log")
        await pilot.pause(0.2)

        svg = app.export_screenshot()
        assert_harmless(svg)
        screen = "\n".join(screen_lines(app))
        for word in ("hello", "bye", "RED", "evil", "output", "crimson", "reversed"):
            assert word in screen, word
        assert "\\u202e" in screen  # the override is shown as what it is, not obeyed

        # The colour of "crimson" survives as a style of the rendered strip, not as bytes.
        (y,) = [n for n, line in enumerate(log.lines) if "crimson" in line]
        strip = log.render_line(y - log.scroll_offset.y)
        assert_harmless(strip.text)
        (red,) = [seg for seg in strip if "crimson" in seg.text]
        assert red.style is not None and red.style.color is not None
        assert red.style.color.number == 1  # SGR 31: red

        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        await pilot.pause()
        assert_harmless(app.export_screenshot())
        assert "hellobye" in "\n".join(screen_lines(app))
        await pilot.press("escape")

        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.pause()
        assert_harmless(app.export_screenshot())
        assert "hellobye" in "\n".join(screen_lines(app))
        await pilot.press("n")

        app.notify(f"task {task}: {PROMPT}", title=PROMPT)
        await wait_for(pilot, lambda: "evil" in "\n".join(screen_lines(app)), "the notification")
        assert_harmless(app.export_screenshot())


async def test_the_failed_pane_shows_a_hostile_last_line_harmlessly(harness: DashboardHarness) -> None:
    failing = ["sh", "-c", r"printf 'boom\033]0;OWNED\007 \033[31mred\033[0m \342\200\256\n'; exit 3"]
    harness.configure(agents={"failing": {"command": failing}}, default_agent="failing")
    task = harness.add(PROMPT, agent="failing", max_attempts=1)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.FAILED, "the failure")
        await wait_for(pilot, lambda: app.dashboard.failed.row_count == 1, "the Failed pane")
        await pilot.pause(0.2)
        assert_harmless(app.export_screenshot())
        (row,) = [line for line in screen_lines(app) if "boom" in line]
        assert "boom red" in row
