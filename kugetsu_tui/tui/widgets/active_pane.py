"""The Active pane: tasks that hold a slot (starting, running, paused).

CPU % and RSS are the supervisor's latest metering of the agent's whole process tree,
as stored on the task; '?' until the first reading."""

from __future__ import annotations

from pathlib import Path

from kugetsu_tui.engine.model import Task
from kugetsu_tui.present import elapsed
from kugetsu_tui.tui import look
from kugetsu_tui.tui.board import Board
from kugetsu_tui.tui.widgets.task_table import Cells, Column, TaskTable


class ActivePane(TaskTable):
    _pane_height = 0

    COLUMNS = (
        Column("id", "ID", 4),
        Column("state", "STATE", 10),
        Column("agent", "AGENT", 8, min_table=100),
        Column("try", "TRY", 4),
        Column("elapsed", "TIME", 6),
        Column("cpu", "CPU", 5),
        Column("rss", "RSS", 5),
        Column("branch", "REPO:BRANCH", 14, flex=1, min_table=110),
        Column("prompt", "PROMPT", 10, flex=3),
    )

    def rows_for(self, board: Board) -> list[Task]:
        return board.active

    def show(self, board: Board) -> None:
        super().show(board)
        # As tall as its rows (plus title and header), so the panes below get the rest.
        height = len(board.active) + 2
        if height != self._pane_height:
            self._pane_height = height
            self.styles.height = height

    def title_for(self, board: Board, shown: int) -> str:
        return f"Active {board.live}/{board.cap}"

    def cells_for(self, task: Task, board: Board) -> Cells:
        since = task.started_at
        place = ""
        if task.repo:
            place = Path(task.repo).name + (f":{task.branch}" if task.branch else "")
        return {
            "id": look.right(str(task.id)),
            "state": look.state_text(task.state),
            "agent": look.plain(task.agent),
            "try": look.right(f"{task.attempts}/{task.max_attempts}"),
            "elapsed": look.right(elapsed(board.now - since if since else None)),
            "cpu": look.right(look.percent(task.cpu_percent)),
            "rss": look.right(look.size(task.rss)),
            "branch": look.plain(place, "bright_black"),
            "prompt": look.plain(task.prompt),
        }
