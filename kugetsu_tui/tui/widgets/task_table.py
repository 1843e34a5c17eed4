"""A table of tasks that is reconciled in place, never cleared and refilled.

Rows are keyed by task id. Each refresh hands over the rows it wants, in order; the
table removes rows that left, adds rows that came, updates only the cells whose text
changed, reorders only when the order changed, and puts the cursor back on the task it
was on. When that task left the table, the cursor lands on a neighbour the person did not
choose: the table remembers which task left and when (`moved_off`), so that a key pressed
a moment later is not taken as meant for the neighbour. Columns have fixed widths (auto width truncates and jumps); the flexible ones
share what the terminal leaves, and some appear only on wide terminals.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.text import printable
from kugetsu_tui.tui.board import Board

Cells = Mapping[str, Text]
MARK_STYLE = "bold magenta"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int  # the fixed width, or the least a flexible column gets
    flex: int = 0  # share of the spare width
    min_table: int = 0  # shown only when the table is at least this wide

    def heading(self) -> Text:
        return Text(self.label, justify="right" if self.key in RIGHT else "left")


RIGHT = frozenset({"id", "pri", "cpu", "rss", "elapsed", "try", "pos", "age", "exit"})


def _same(a: Text, b: Text) -> bool:
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans


class TaskTable(DataTable[Text]):
    """Base for the Active, Queued and Failed panes."""

    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    TITLE: ClassVar[str] = ""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", cell_padding=1)
        self._wanted: list[tuple[int, Cells]] = []
        self._cells: dict[int, tuple[Text, ...]] = {}
        self._order: list[int] = []
        self._shown: tuple[Column, ...] = ()
        self._widths: tuple[int, ...] = ()
        self.tasks: dict[int, Task] = {}
        self._title = ""
        self.moved_off: tuple[int, float] | None = None  # (task id, monotonic time)
        self.marked: frozenset[int] = frozenset()  # marked with space: their ID cell says so

    # --- what subclasses provide ------------------------------------------------------

    def rows_for(self, board: Board) -> list[Task]:
        raise NotImplementedError

    def cells_for(self, task: Task, board: Board) -> Cells:
        raise NotImplementedError

    def title_for(self, board: Board, shown: int) -> str:
        return self.TITLE

    # --- refreshing -------------------------------------------------------------------

    def show(self, board: Board) -> None:
        tasks = self.rows_for(board)
        self.tasks = {t.id: t for t in tasks}
        title = self.title_for(board, len(tasks))
        if title != self._title:  # setting a border title repaints, even when unchanged
            self._title = title
            self.border_title = Text(printable(title))  # Text, not markup: a filter may hold brackets
        self.reconcile([(t.id, self._with_mark(t.id, self.cells_for(t, board))) for t in tasks])
        self.set_class(not tasks, "-empty")  # an empty pane gives its rows to the others

    def _with_mark(self, task_id: int, cells: Cells) -> Cells:
        if task_id not in self.marked:
            return cells
        return {**cells, "id": Text(f"●{task_id}", style=MARK_STYLE, justify="right", no_wrap=True)}

    @property
    def cursor_task_id(self) -> int | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def reconcile(self, rows: Sequence[tuple[int, Cells]]) -> None:
        self._wanted = list(rows)
        if not self._shown:
            return  # not laid out yet: the first resize fills the table
        keep = self.cursor_task_id
        wanted = {task_id for task_id, _ in rows}
        gone = [task_id for task_id in self._order if task_id not in wanted]
        with self.app.batch_update():
            if len(gone) > 64 and len(gone) * 2 > len(self._order):
                self._refill()  # cheaper than many O(n) removals
            else:
                self._update_in_place(rows, gone)
            self._put_cursor_on(keep)
        if keep is not None and keep not in wanted and self.cursor_task_id is not None and self.has_focus:
            self.moved_off = (keep, time.monotonic())

    def _update_in_place(self, rows: Sequence[tuple[int, Cells]], gone: list[int]) -> None:
        """Remove the rows gone, add the new ones, update only the cells that changed,
        then sort once if the order moved."""
        for task_id in gone:
            self.remove_row(str(task_id))
            del self._cells[task_id]
        wanted_ids = [task_id for task_id, _ in rows]
        wanted = set(wanted_ids)
        order = [task_id for task_id in self._order if task_id in wanted]
        for task_id, cells in rows:
            row = tuple(cells[c.key] for c in self._shown)
            old = self._cells.get(task_id)
            if old is None:
                self.add_row(*row, key=str(task_id))
                order.append(task_id)
            else:
                for column, before, after in zip(self._shown, old, row, strict=True):
                    if not _same(before, after):
                        self.update_cell(str(task_id), column.key, after)
            self._cells[task_id] = row
        if order != wanted_ids:
            position = {task_id: n for n, task_id in enumerate(wanted_ids)}
            self.sort("id", key=lambda cell: position[int(cell.plain)])
        self._order = wanted_ids

    def _put_cursor_on(self, task_id: int | None) -> None:
        if task_id is None or task_id not in self._cells:
            return
        row = self._order.index(task_id)
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False)

    def _refill(self) -> None:
        self.clear()
        self._cells.clear()
        for task_id, cells in self._wanted:
            row = tuple(cells[c.key] for c in self._shown)
            self.add_row(*row, key=str(task_id))
            self._cells[task_id] = row
        self._order = [task_id for task_id, _ in self._wanted]

    # --- layout -----------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.lay_out(self.scrollable_content_region.width)

    def lay_out(self, width: int) -> None:
        """Pick the columns that fit `width` and share out the spare room; rebuild if changed."""
        shown = tuple(c for c in self.COLUMNS if c.min_table <= width)
        pad = 2 * self.cell_padding
        spare = width - sum(c.width + pad for c in shown)
        flex_total = sum(c.flex for c in shown)
        widths = []
        given = 0
        flexible = [c for c in shown if c.flex]
        for column in shown:
            extra = 0
            if column.flex and spare > 0:
                extra = spare * column.flex // flex_total
                if column is flexible[-1]:
                    extra = spare - given
                given += extra
            widths.append(column.width + extra)
        if shown == self._shown and tuple(widths) == self._widths:
            return
        keep = self.cursor_task_id
        self._shown, self._widths = shown, tuple(widths)
        with self.app.batch_update():
            self.clear(columns=True)
            for column, column_width in zip(shown, widths, strict=True):
                self.add_column(column.heading(), width=column_width, key=column.key)
            self._refill()
            self._put_cursor_on(keep)
