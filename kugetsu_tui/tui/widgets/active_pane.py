"""The Active pane: tasks that hold a slot (starting, running, paused).

CPU % and RSS are the supervisor's latest metering of the agent's whole process tree,
as stored on the task; '?' until the first reading."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.present import elapsed
from kugetsu_tui.tui import look
from kugetsu_tui.tui.board import Board
from kugetsu_tui.tui.widgets.task_table import Cells, Column, TaskTable


class ActivePane(TaskTable):
    _pane_height = 0
    _asking: frozenset[int] = frozenset()  # tasks shown as needing input (notified once each)
    # With many rows, a redraw of all of them on every metering (2 s) is most of the
    # dashboard's idle CPU: while `hold` is set, each row keeps the time, CPU and RSS it
    # last showed (they step with the dashboard's tick); a change of state shows at once.
    hold = False
    _metered: dict[tuple[int, float | None], tuple[Text, Text, Text]] | None = None  # by attempt

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
        if not self.hold or self._metered is None:
            self._metered = {}
        super().show(board)
        asking = {t.id: t.needs_input for t in board.active if t.needs_input}
        for task_id in sorted(asking.keys() - self._asking):
            note = one_line(asking[task_id] or "")[:120]
            self.app.notify(note, title=f"task {task_id} needs input", severity="warning", timeout=10)
        self._asking = frozenset(asking)
        # As tall as its rows (plus title and header), so the panes below get the rest.
        height = len(board.active) + 2
        if height != self._pane_height:
            self._pane_height = height
            self.styles.height = height

    def title_for(self, board: Board, shown: int) -> str:
        waiting = sum(1 for t in board.active if t.needs_input)
        return f"Active {board.live}/{board.cap}" + (f" · {waiting} need input" if waiting else "")

    def cells_for(self, task: Task, board: Board) -> Cells:
        since = task.started_at
        place = ""
        if task.repo:
            place = Path(task.repo).name + (f":{task.branch}" if task.branch else "")
        assert self._metered is not None  # (show() made it)
        metered = self._metered.get((task.id, since)) if self.hold else None
        if metered is None:
            metered = (
                look.right(elapsed(board.now - since if since else None)),
                look.right(look.percent(task.cpu_percent)),
                look.right(look.size(task.rss)),
            )
            self._metered[task.id, since] = metered
        return {
            "id": look.right(str(task.id)),
            "state": Text("! input", "bold yellow") if task.needs_input else look.state_text(task.state),
            "agent": look.plain(task.agent),
            "try": look.right(f"{task.attempts}/{task.max_attempts}"),
            "elapsed": metered[0],
            "cpu": metered[1],
            "rss": metered[2],
            "branch": look.plain(place, "bright_black"),
            "prompt": look.prompt(task),
        }
