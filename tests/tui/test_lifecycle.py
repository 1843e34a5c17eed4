"""Supervising here, attaching to another supervisor, taking over, and quitting safely."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from tests.helpers.harness import wait_until
from tests.helpers.tui import DashboardHarness, wait_for

SIZE = (100, 30)


def alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_quit_with_live_agents_asks_and_leaves_them_for_the_next_supervisor(
    harness: DashboardHarness,
) -> None:
    task = harness.add("outlives the dashboard")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert str(app.screen.detail).startswith("1 live agent keeps running; the next supervisor")
        await pilot.press("n")
        assert app.screen is app.dashboard and app.is_running
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    pid = harness.store.get(task).pid  # type: ignore[union-attr]
    assert pid is not None and alive(pid)
    assert harness.home.supervisor_pid() is None
    assert harness.state(task) is State.RUNNING

    # The next dashboard re-adopts it: the engine finds it again.
    again = harness.app()
    async with again.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: any(e.type == "task_adopted" for e in harness.store.events(task_id=task)),
            "re-adoption",
        )
        assert again.supervisor is not None
        assert harness.state(task) is State.RUNNING


async def test_quit_without_live_agents_does_not_ask(harness: DashboardHarness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.home.supervisor_pid() is not None, "the supervisor")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert harness.home.supervisor_pid() is None


async def test_attaches_to_a_headless_supervisor_and_takes_over_when_it_stops(
    harness: DashboardHarness,
) -> None:
    task = harness.add("under a headless supervisor")
    headless = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kugetsu_tui",
            "run",
            "--headless",
            "--forever",
            "--home",
            str(harness.home.root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: harness.home.supervisor_pid() == headless.pid, "the headless supervisor to start")
        app = harness.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
            await wait_for(pilot, lambda: app.elsewhere.pid == headless.pid, "attached")
            assert app.supervisor is None
            await wait_for(pilot, lambda: app.dashboard.selected_task_id == task, "the task selected")
            await pilot.press("p")  # a request row, carried out by the other process
            await wait_for(pilot, lambda: harness.state(task) is State.PAUSED, "the pause")
            headless.send_signal(signal.SIGTERM)
            headless.wait(10)
            await wait_for(pilot, lambda: app.supervisor is not None, "the take-over")
            await pilot.press("p")
            await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the resume")
    finally:
        if headless.poll() is None:
            headless.kill()
            headless.wait()


def test_the_quit_dialog_says_what_happens_to_agents_and_queued_tasks() -> None:
    from kugetsu_tui.tui.handlers.view import quit_words

    assert quit_words(2, 3, hosting=True, pid=None) == (
        "Quit? 2 live agents, 3 queued tasks.",
        "2 live agents keep running; the next supervisor (kugetsu, kugetsu run) finds them again. "
        "3 queued tasks wait until a supervisor runs; this dashboard's supervisor stops when you quit.",
    )
    assert quit_words(1, 0, hosting=False, pid=4242) == (
        "Quit? 1 live agent.",
        "The supervisor (pid 4242) keeps running: 1 live agent and 0 queued tasks go on under it.",
    )


async def test_quit_while_hosting_with_only_queued_tasks_asks(harness: DashboardHarness) -> None:
    harness.configure(cap=1)
    first, second = harness.add("runs"), harness.add("waits")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: harness.state(first) is State.RUNNING, "the first agent")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Quit? 1 live agent, 1 queued task."
        assert "1 queued task waits until a supervisor runs" in app.screen.detail
        await pilot.press("n")
        assert harness.state(second) is State.QUEUED
