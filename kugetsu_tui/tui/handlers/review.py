"""Handlers for finished work: the Done view, a task's diff, merge and discard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError
from kugetsu_tui.tui.handlers.common import acted, need_task, short
from kugetsu_tui.tui.handlers.marks import act_on_marked, marked_tasks, merge_all
from kugetsu_tui.tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp


def open_done(app: KugetsuApp) -> None:
    from kugetsu_tui.tui.screens.done import DoneScreen

    app.push_screen(DoneScreen())


def show_diff(app: KugetsuApp) -> None:
    from kugetsu_tui.engine import review
    from kugetsu_tui.tui.screens.diff import DiffScreen

    task = need_task(app)
    if task is None:
        return
    try:
        text = review.diff(task)
    except (UsageError, review.ReviewError) as err:
        app.notify(str(err), title="diff", severity="warning")
        return
    app.push_screen(DiffScreen(task, review.split_diff(text), review.base_of(task)))


def merge_task(app: KugetsuApp) -> None:
    from kugetsu_tui.engine import review

    if marked := marked_tasks(app):
        what = "Each task's branch is merged where it started; then its worktree and branch go."
        act_on_marked(app, "merge", marked, lambda ids: merge_all(app, ids), what)
        return
    task = need_task(app)
    if task is None:
        return
    base = review.base_of(task) if task.repo and not task.no_worktree else None
    target = base.branch if base is not None else None
    strategy = app.config.review_strategy
    if not task.state.is_settled or target is None or not task.branch:
        app.act("merge", lambda: app.control.merge(task.id, strategy=strategy))  # says why not
        return

    def answered(yes: bool | None) -> None:
        if yes and acted(app, "merge", lambda: [app.control.merge(task.id, strategy=strategy)]):
            close_diff(app, task.id)

    app.push_screen(
        ConfirmScreen(
            f"Merge task {task.id} into {target}?",
            f"{short(one_line(task.prompt), 200)}\n\nStrategy: {strategy} ({STRATEGY_WORDS[strategy]} "
            f"{task.branch} on {target}). Then its worktree and branch are removed.",
            yes="Merge",
        ),
        answered,
    )


STRATEGY_WORDS = {
    "merge": "a merge commit of",
    "squash": "one commit with the changes of",
    "rebase": "the commits, replayed, of",
}


def close_diff(app: KugetsuApp, task_id: int) -> None:
    """Back from the diff of a task whose work was just merged or discarded."""
    from kugetsu_tui.tui.screens.diff import DiffScreen

    if isinstance(app.screen, DiffScreen) and app.screen.selected_task_id == task_id:
        app.pop_screen()


def discard_task(app: KugetsuApp) -> None:
    if marked := marked_tasks(app):
        what = "This removes each one's worktree and branch, whatever is in them."
        act_on_marked(app, "discard", marked, app.control.discard, what)
        return
    task = need_task(app)
    if task is None:
        return
    if not task.state.is_settled:
        app.act("discard", lambda: app.control.discard([task.id]))  # says why not
        return

    def answered(yes: bool | None) -> None:
        if yes and acted(app, "discard", lambda: app.control.discard([task.id])):
            close_diff(app, task.id)

    gone = " and ".join(
        f"{what} {where}" for what, where in (("worktree", task.worktree), ("branch", task.branch)) if where
    )
    app.push_screen(
        ConfirmScreen(
            f"Discard task {task.id}?",
            f"{short(one_line(task.prompt), 200)}\n\nThis removes its {gone or 'leftovers'}, "
            "whatever is in them.",
            yes="Discard",
        ),
        answered,
    )
