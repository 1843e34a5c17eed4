"""The Queued pane: the head of the queue in admission order, and why each task waits."""

from __future__ import annotations

from kugetsu_tui.engine.model import State, Task
from kugetsu_tui.tui import look
from kugetsu_tui.tui.board import Board
from kugetsu_tui.tui.widgets.task_table import Cells, Column, TaskTable


class QueuedPane(TaskTable):
    COLUMNS = (
        Column("pos", "#", 4),
        Column("id", "ID", 4),
        Column("pri", "PRI", 3),
        Column("agent", "AGENT", 8, min_table=110),
        Column("age", "AGE", 5),
        Column("why", "WAITS FOR", 14, flex=1),
        Column("prompt", "PROMPT", 10, flex=2),
    )

    def rows_for(self, board: Board) -> list[Task]:
        return board.queued

    def title_for(self, board: Board, shown: int) -> str:
        total = board.queued_total
        if board.text_filter:
            return f"Queued {total} · {shown} match “{board.text_filter}”"
        if total == 0:
            return "Queued 0 · n adds a task"
        if total > shown:
            return f"Queued {total} · first {shown} shown, {total - shown} more"
        return f"Queued {total}"

    def cells_for(self, task: Task, board: Board) -> Cells:
        position = board.view.position.get(task.id)
        reason = board.view.wait_reason.get(task.id)
        why = look.short_reason(reason)
        if task.held:
            why_text = look.plain("‖ held", look.HELD_STYLE)
        elif why.startswith("backoff"):
            why_text = look.plain(why, "yellow")
        elif why == "starting":
            why_text = look.plain("◌ starting", look.STATE_STYLE[State.STARTING])
        else:
            why_text = look.plain(why, "bright_black")
        return {
            "pos": look.right(f"{position}" if position else "-"),
            "id": look.right(str(task.id)),
            "pri": look.right(str(task.priority)),
            "agent": look.plain(task.agent),
            "age": look.right(look.age(board.now - task.queued_at)),
            "why": why_text,
            "prompt": look.prompt(task),
        }
