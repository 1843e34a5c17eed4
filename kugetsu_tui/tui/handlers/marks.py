"""Marks: `space` marks rows on the dashboard; cancel, requeue, merge and discard then act
on every marked task still in sight, after one question that names how many and which."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kugetsu_tui.engine.model import SETTLED_STATES, ActionResult, Task
from kugetsu_tui.tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

NAMED = 12  # the question names at most this many ids


def toggle_mark(app: KugetsuApp) -> None:
    app.dashboard.toggle_mark()


def marked_tasks(app: KugetsuApp) -> list[Task]:
    """The marked tasks the person can see (on the main screen, in some pane), by id."""
    if app.screen is not app.dashboard or not app.dashboard.marked:
        return []
    ids = sorted(task_id for task_id in app.dashboard.marked if app.board.get(task_id) is not None)
    return [task for task in map(app.store.get, ids) if task is not None]


def act_on_marked(
    app: KugetsuApp,
    what: str,
    tasks: Sequence[Task],
    call: Callable[[list[int]], Sequence[ActionResult]],
    consequence: str,
) -> None:
    """Ask once, naming the count and the ids; on yes, one Control call for all of them."""
    ids = [task.id for task in tasks]
    named = ", ".join(str(i) for i in ids[:NAMED]) + (", …" if len(ids) > NAMED else "")
    verb = what.capitalize()
    noun = "task" if len(ids) == 1 else "tasks"

    def answered(yes: bool | None) -> None:
        if yes and app.act(what, lambda: call(ids)):
            app.dashboard.unmark(ids)

    app.push_screen(
        ConfirmScreen(
            f"{verb} {len(ids)} marked {noun}?",
            f"Tasks {named}.\n\n{consequence}",
            yes=f"{verb} {len(ids)}",
        ),
        answered,
    )


def merge_all(app: KugetsuApp, ids: list[int]) -> list[ActionResult]:
    """Merge each in turn, once all were checked (a refusal leaves every one unmerged)."""
    app.control.find(ids, SETTLED_STATES, "merged")
    return [app.control.merge(task_id) for task_id in ids]
