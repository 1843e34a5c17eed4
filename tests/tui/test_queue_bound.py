"""The dashboard's new-task form keeps to `[queue] max_queued` like every other face."""

from __future__ import annotations

import subprocess

from textual.widgets import Input

from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.screens.new_task import NewTaskScreen
from tests.helpers.tui import DashboardHarness as Harness
from tests.helpers.tui import wait_for

SIZE = (120, 35)


async def test_the_form_refuses_a_task_beyond_max_queued(harness: Harness) -> None:
    repo = harness.root / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    harness.configure(queue={"max_queued": 1, "retry_backoff": "30s", "kill_grace": "1s"})
    first = harness.add("already queued")
    app = harness.app(supervise=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, NewTaskScreen)
        app.screen.query_one("#repo", Input).value = str(repo)
        await pilot.press(*"one too many")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any(n.message.startswith("queue-full: 1 tasks queued") for n in app._notifications),
            "the refusal",
        )
    assert [(t.id, t.state) for t in harness.store.tasks()] == [(first, State.QUEUED)]
