"""Handlers that only change what is shown (details, help, log, the full log, filter, the Failed pane's
kinds) and quitting the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine.commands import build_command, working_dir
from kugetsu_tui.engine.model import State
from kugetsu_tui.tui.handlers.common import need_task
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.detail import DetailScreen
from kugetsu_tui.tui.screens.full_log import FullLogScreen
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
    """Quit, after saying what happens to live agents and queued tasks when it matters
    (agents keep running either way; queued tasks wait while no supervisor runs)."""
    if app.quitting:
        return
    live = app.store.live_count()
    queued = app.store.counts().get(State.QUEUED, 0)
    hosting = app.supervisor is not None
    if not live and not (hosting and queued):
        await app.shut_down()
        return

    async def answered(yes: bool | None) -> None:
        if yes:
            await app.shut_down()

    question, what = quit_words(live, queued, hosting=hosting, pid=app.elsewhere.pid)
    app.push_screen(ConfirmScreen(question, what, yes="Quit"), answered)


def quit_words(live: int, queued: int, *, hosting: bool, pid: int | None) -> tuple[str, str]:
    """The quit dialog's question and what quitting does, by who runs the agents."""
    agents = f"{live} live agent{'' if live == 1 else 's'}"
    tasks = f"{queued} queued task{'' if queued == 1 else 's'}"
    question = f"Quit? {agents}{f', {tasks}' if queued else ''}."
    if not hosting and pid:
        who = f"The supervisor (pid {pid})" if pid > 0 else "The supervisor in another process"
        return question, f"{who} keeps running: {agents} and {tasks} go on under it."
    said = []
    if live:
        verb, them = ("keeps", "it") if live == 1 else ("keep", "them")
        said.append(
            f"{agents} {verb} running; the next supervisor (kugetsu, kugetsu run) finds {them} again."
        )
    if queued:
        verb = "waits" if queued == 1 else "wait"
        now = "; this dashboard's supervisor stops when you quit" if hosting else ""
        said.append(f"{tasks} {verb} until a supervisor runs{now}.")
    return question, " ".join(said)


def focus_log(app: KugetsuApp) -> None:
    app.dashboard.focus_log()


def full_log(app: KugetsuApp) -> None:
    """The selected task's log full screen, with search."""
    task = need_task(app)
    if task is not None:
        title = f"Log · task {task.id} · {task.state}"
        app.push_screen(FullLogScreen(task.id, app.home.log_path(task.id), title))


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
