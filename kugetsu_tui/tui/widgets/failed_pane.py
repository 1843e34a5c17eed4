"""The Failed pane: failed, cancelled and expired tasks, newest first, with why.

`f` cycles which of those kinds it lists. The last line of each task's log is read
once per settled attempt and kept, so the pane costs no file reads while it sits still.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from kugetsu_tui.engine.agents import is_mark
from kugetsu_tui.engine.model import BAD_ENDINGS, State, Task
from kugetsu_tui.present import STATE_SYMBOL
from kugetsu_tui.tui import look
from kugetsu_tui.tui.board import Board
from kugetsu_tui.tui.widgets.task_table import Cells, Column, TaskTable

KINDS: tuple[frozenset[State], ...] = (
    BAD_ENDINGS,
    frozenset({State.FAILED}),
    frozenset({State.CANCELLED}),
    frozenset({State.EXPIRED}),
)


def exit_text(code: int | None) -> str:
    if code is None:
        return "-"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"sig{-code}"
    return str(code)


def last_line(path: Path, limit: int = 4096) -> str:
    """The last non-empty line the agent wrote in a log file (not the line that closes its
    attempt), or '' if there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(end - limit, 0))
            tail = f.read()
    except OSError:
        return ""
    for line in reversed(tail.decode("utf-8", errors="replace").splitlines()):
        if line.strip() and not is_mark(line):
            return line.strip()
    return ""


class FailedPane(TaskTable):
    COLUMNS = (
        Column("id", "ID", 4),
        Column("state", "STATE", 11),
        Column("exit", "EXIT", 7),
        Column("try", "TRY", 4),
        Column("when", "WHEN", 5),
        Column("agent", "AGENT", 8, min_table=120),
        Column("prompt", "PROMPT", 10, flex=1),
        Column("why", "WHY (LAST OUTPUT)", 10, flex=1),
    )

    def __init__(self, log_path: Callable[[int], Path], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_path = log_path
        self.kind = 0
        self._last_lines: dict[tuple[int, float | None], str] = {}

    def next_kind(self) -> str:
        self.kind = (self.kind + 1) % len(KINDS)
        return self.kind_name()

    def kind_name(self) -> str:
        return "all" if self.kind == 0 else "/".join(sorted(str(s) for s in KINDS[self.kind]))

    def rows_for(self, board: Board) -> list[Task]:
        kinds = KINDS[self.kind]
        return [t for t in board.failed if t.state in kinds]

    def title_for(self, board: Board, shown: int) -> str:
        counts = board.counts
        parts = [
            f"{STATE_SYMBOL[s]} {counts.get(s, 0)}" for s in (State.FAILED, State.CANCELLED, State.EXPIRED)
        ]
        which = "" if self.kind == 0 else f" · showing {self.kind_name()} (f)"
        return f"Failed {'  '.join(parts)}{which}"

    def why(self, task: Task) -> str:
        if task.state is State.FAILED:
            key = (task.id, task.ended_at)
            if key not in self._last_lines:
                if len(self._last_lines) > 1000:
                    self._last_lines.clear()
                self._last_lines[key] = last_line(self.log_path(task.id))
            return self._last_lines[key] or task.reason or ""
        return task.reason or str(task.state)

    def cells_for(self, task: Task, board: Board) -> Cells:
        return {
            "id": look.right(str(task.id)),
            "state": look.state_text(task.state),
            "exit": look.right(exit_text(task.exit_code)),
            "try": look.right(f"{task.attempts}/{task.max_attempts}"),
            "when": look.right(look.clock(task.ended_at)),
            "agent": look.plain(task.agent),
            "prompt": look.prompt(task),
            "why": look.plain(self.why(task), "bright_black"),
        }
