"""What every handler needs: the task the person sees selected, and a short form of text."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.model import Task

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp


def selected_task(app: KugetsuApp) -> Task | None:
    """The task the person sees selected: on the Done view or a diff, that screen's."""
    task_id = getattr(app.screen, "selected_task_id", app.dashboard.selected_task_id)
    return app.store.get(task_id) if task_id is not None else None


def need_task(app: KugetsuApp) -> Task | None:
    """The selected task, or None after saying why there is none to act on."""
    if app.screen is app.dashboard and (gone := app.dashboard.moved_off()) is not None:
        # The key was likely meant for the task that just left, not for its neighbour.
        now = app.dashboard.selected_task_id
        app.notify(
            f"task {gone} just left this pane; the cursor is on task {now} now: press again for it",
            severity="warning",
            timeout=4,
        )
        return None
    task = selected_task(app)
    if task is None:
        app.notify("no task selected", severity="warning", timeout=3)
    return task


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def acted(app: KugetsuApp, what: str, call: Callable[[], list[ActionResult]]) -> bool:
    """app.act, and whether every outcome was done (not refused, no conflict)."""
    outcomes: list[ActionResult] = []

    def run_call() -> list[ActionResult]:
        outcomes.extend(call())
        return outcomes

    return app.act(what, run_call) and all(outcome.ok for outcome in outcomes)
