"""Handlers that only change what is shown (details, help, log, filter, the Failed pane's
kinds) and quitting the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine.commands import build_command, working_dir
from kugetsu_tui.tui.handlers.common import need_task
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.detail import DetailScreen
from kugetsu_tui.tui.screens.help import HelpScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

DETAIL_EVENTS = 200  # the detail view shows this many of a task's latest events
DETAIL_CHILDREN = 50  # and this many of its children


def details(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    agent = app.config.agents.get(task.agent)
    command = None
    if agent is not None:
        command = build_command(agent, task, working_dir(task, app.home), app.home)
    events = app.store.events(task_id=task.id)[-DETAIL_EVENTS:]
    child_ids = app.store.children([task.id]).get(task.id, [])[:DETAIL_CHILDREN]
    children = [child for child in map(app.store.get, child_ids) if child is not None]
    app.push_screen(
        DetailScreen(
            task,
            events=events,
            command=command,
            log_path=app.home.log_path(task.id),
            wait_reason=app.board.view.wait_reason.get(task.id),
            now=app.clock(),
            children=children,
        )
    )


def show_help(app: KugetsuApp) -> None:
    from kugetsu_tui.tui.actions import help_rows  # the table imports this module

    app.push_screen(HelpScreen(tuple(help_rows())))


async def quit_dashboard(app: KugetsuApp) -> None:
    """Quit, after asking when agents are live (they keep running either way)."""
    if app.quitting:
        return
    live = app.store.live_count()
    if not live:
        await app.shut_down()
        return
    if app.supervisor is not None:
        where = (
            "They keep running after you quit; the next supervisor (kugetsu, "
            "kugetsu run) finds them again and settles them."
        )
    elif app.elsewhere.pid:
        where = f"They keep running under the supervisor pid {app.elsewhere.pid}."
    else:
        where = "They keep running; the next supervisor finds them again."

    async def answered(yes: bool | None) -> None:
        if yes:
            await app.shut_down()

    agents = "agent is" if live == 1 else "agents are"
    app.push_screen(ConfirmScreen(f"Quit? {live} {agents} live.", where, yes="Quit"), answered)


def focus_log(app: KugetsuApp) -> None:
    app.dashboard.focus_log()


def cycle_failed_kind(app: KugetsuApp) -> None:
    app.dashboard.cycle_failed_kind()


def open_filter(app: KugetsuApp) -> None:
    app.dashboard.open_filter()


def clear_filter(app: KugetsuApp) -> None:
    """escape: drop the marks first, if any; then the filter."""
    if app.dashboard.marked:
        app.dashboard.unmark()
        app.notify("marks cleared", timeout=2)
        return
    app.dashboard.clear_filter()
