"""Marks: `space` marks rows on the main screen or the Done view; cancel, requeue, merge and
discard then act on every marked task still in sight there, after one question that names
how many and which. A screen that has marks keeps them itself (`Marking`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.model import SETTLED_STATES, Task
from kugetsu_tui.tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

NAMED = 12  # the question names at most this many ids


@runtime_checkable
class Marking(Protocol):
    """A screen whose rows can be marked."""

    marked: set[int]

    def toggle_mark(self) -> None: ...

    def unmark(self, task_ids: Iterable[int] | None = None) -> None: ...

    def shows(self, task_id: int) -> bool: ...


def toggle_mark(app: KugetsuApp) -> None:
    screen = app.screen
    if isinstance(screen, Marking):
        screen.toggle_mark()
    else:
        app.notify("nothing to mark here", severity="warning", timeout=3)


def marked_tasks(app: KugetsuApp) -> list[Task]:
    """The marked tasks the person can see on the screen in front, by id."""
    screen = app.screen
    if not isinstance(screen, Marking) or not screen.marked:
        return []
    ids = sorted(task_id for task_id in screen.marked if screen.shows(task_id))
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
    screen = app.screen
    named = ", ".join(str(i) for i in ids[:NAMED]) + (", …" if len(ids) > NAMED else "")
    verb = what.capitalize()
    noun = "task" if len(ids) == 1 else "tasks"

    def answered(yes: bool | None) -> None:
        if yes and app.act(what, lambda: call(ids)) and isinstance(screen, Marking):
            screen.unmark(ids)

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
    return [app.control.merge(task_id, strategy=app.config.review_strategy) for task_id in ids]
