"""Handlers that change the queue: pause / resume, cancel, requeue, priority, hold / release,
new."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kugetsu_tui.engine.config.kinds import PRIORITY
from kugetsu_tui.engine.intake import Intake
from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.model import REQUEUEABLE_STATES, NewTask, State, Task
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.errors import UsageError
from kugetsu_tui.first_run import agent_to_offer
from kugetsu_tui.tui.handlers.common import need_task, short
from kugetsu_tui.tui.handlers.marks import act_on_marked, marked_tasks
from kugetsu_tui.tui.screens.confirm import ChoiceScreen, ConfirmScreen
from kugetsu_tui.tui.screens.new_task import NewTaskScreen
from kugetsu_tui.tui.screens.task_forms import PriorityScreen, RequeueScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

CHILDREN_NAMED = 10  # a cancel dialog names at most this many children


def pause_resume(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    if task.state is State.PAUSED:
        app.act("resume", lambda: app.control.resume([task.id]))
    else:
        app.act("pause", lambda: app.control.pause([task.id]))


def cancel_task(app: KugetsuApp) -> None:
    if marked := marked_tasks(app):
        what = "Queued ones leave the queue; live ones' agents end (SIGTERM, then SIGKILL)."
        act_on_marked(app, "cancel", marked, app.control.cancel, what)
        return
    task = need_task(app)
    if task is None:
        return
    if not (task.state is State.QUEUED or task.state.is_live):
        app.act("cancel", lambda: app.control.cancel([task.id]))  # says why not
        return

    def answered(yes: bool | None) -> None:
        if yes:
            app.act("cancel", lambda: app.control.cancel([task.id]))

    what = "end its agent (SIGTERM, then SIGKILL)" if task.state.is_live else "drop it from the queue"
    detail = f"{short(one_line(task.prompt), 200)}\n\nThis will {what}."
    children = app.control.descendants(task.id)  # queued or live, as cancel --children ends them
    if children:
        ask_about_children(app, task, children, detail)
        return
    app.push_screen(ConfirmScreen(f"Cancel task {task.id}?", detail, yes="Cancel it"), answered)


def ask_about_children(app: KugetsuApp, task: Task, ids: list[int], detail: str) -> None:
    """Cancelling a planner: its children may be orphaned work, so offer to cancel them too."""
    named = ", ".join(str(i) for i in ids[:CHILDREN_NAMED]) + (", …" if len(ids) > CHILDREN_NAMED else "")
    noun = "child" if len(ids) == 1 else "children"

    def answered(choice: str | None) -> None:
        if choice == "also":
            # (those unfinished when it is carried out: one that ended meanwhile is no refusal)
            app.act("cancel", lambda: app.control.cancel([task.id], children=True))
        elif choice == "yes":
            app.act("cancel", lambda: app.control.cancel([task.id]))

    app.push_screen(
        ChoiceScreen(
            f"Cancel task {task.id}? It has {len(ids)} {noun} not finished.",
            f"{detail}\n\nIts {noun} (queued or live): {named}.",
            also=f"Cancel it and {len(ids)} {noun}",
            yes="Only this task",
        ),
        answered,
    )


def requeue(app: KugetsuApp) -> None:
    """Marked tasks: one question, then requeued as they were. One task: a form with its
    prompt to edit and a note for the next attempt, as `kugetsu requeue N --note` takes it."""
    if marked := marked_tasks(app):
        act_on_marked(
            app, "requeue", marked, app.control.requeue, "Each is queued again with fresh attempts."
        )
        return
    task = need_task(app)
    if task is None:
        return
    if task.state not in REQUEUEABLE_STATES:
        app.act("requeue", lambda: app.control.requeue([task.id]))  # says why not
        return
    shown = printable(task.prompt, lines=True)

    def send(prompt: str, note: str) -> None:
        # The prompt as shown, unedited, is the prompt as stored (not its printable form).
        edited = None if prompt == shown else prompt
        outcomes = app.control.requeue([task.id], note or None, prompt=edited)
        app.act("requeue", lambda: outcomes)

    app.push_screen(RequeueScreen(task.id, task.prompt, send))


def set_priority(app: KugetsuApp) -> None:
    """A queued task's priority, asked for in a small form."""
    task = need_task(app)
    if task is None:
        return
    if task.state is not State.QUEUED:
        app.act("priority", lambda: app.control.set_priority([task.id], task.priority))  # says why not
        return

    def send(text: str) -> None:
        try:
            priority = int(text.strip())
        except ValueError:
            raise UsageError(f"priority: expected {PRIORITY.expected}, got {text.strip()!r}") from None
        outcomes = app.control.set_priority([task.id], priority)
        app.act("priority", lambda: outcomes)

    app.push_screen(PriorityScreen(task.id, task.priority, send))


def hold_release(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    if task.state is State.QUEUED and task.held:
        app.act("release", lambda: app.control.release([task.id]))
    else:
        app.act("hold", lambda: app.control.hold([task.id]))


def new_task(app: KugetsuApp) -> None:
    repo = app.last_repo or guess_repo(app)

    def added(new: NewTask | None) -> None:
        if new is None:
            return
        app.last_repo = new.repo or ""
        app.act(
            "add",
            lambda: [
                ActionResult(True, "queued", i)
                for i in app.control.add([new], max_queued=app.config.max_queued)
            ],
        )

    app.push_screen(
        NewTaskScreen(
            agents=sorted(app.config.agents),
            agent=agent_to_offer(app.config, app.find_agent),
            repo=repo,
            intake=Intake(app.config, app.store),
        ),
        added,
    )


def guess_repo(app: KugetsuApp) -> str:
    """The form's first guess: the repo of a task on the board, else where we were started."""
    board = app.board
    for group in (board.active, board.queued, board.failed):
        for task in group:
            if task.repo:
                return task.repo
    return os.getcwd()
