"""The Done view (`v`): succeeded tasks, the latest to end first, with what each changed
(+/- lines, files, or "no changes") and what became of it (unreviewed, merged, discarded).

Read from the store a page at a time (`Store.succeeded`): the next page is read when the
cursor reaches the last row, so a long history costs nothing until someone scrolls to it.
Its keys (d diff, m merge, x discard) come from the actions table; they act on the task
under the cursor, by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from kugetsu_tui.engine.model import Review, State, Task
from kugetsu_tui.tui import actions, look
from kugetsu_tui.tui.widgets.task_table import MARK_STYLE

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

PAGE = 100
REVIEW_STYLE = {Review.UNREVIEWED: "yellow", Review.MERGED: "bright_green", Review.DISCARDED: "bright_black"}
COLUMNS = (("id", "ID", 5), ("ended", "ENDED", 5), ("changes", "+/−", 12), ("files", "FILES", 5),
           ("review", "REVIEW", 10), ("agent", "AGENT", 9), ("prompt", "PROMPT", 0))  # fmt: skip


def changes_cells(task: Task) -> tuple[Text, Text]:
    """(+/− lines, files) of a task's work; "no changes" when it changed nothing."""
    changes = task.changes
    if changes is None:
        return look.right(look.UNKNOWN), look.right(look.UNKNOWN)
    if changes.empty:
        return look.right("no changes", "bright_black"), look.right("0")
    lines = Text.assemble((f"+{changes.insertions}", "green"), " ", (f"−{changes.deletions}", "red"))
    lines.justify = "right"
    return lines, look.right(str(changes.files))


def done_cells(task: Task) -> tuple[Text, ...]:
    review = Review(task.review) if task.review in {str(r) for r in Review} else Review.UNREVIEWED
    changed, files = changes_cells(task)
    return (
        look.right(str(task.id)),
        look.right(look.clock(task.ended_at)),
        changed,
        files,
        Text(str(review), style=REVIEW_STYLE[review]),
        look.plain(task.agent),
        look.prompt(task),
    )


class DoneScreen(Screen[None]):
    DEFAULT_CSS = """
    DoneScreen #done-title { width: 1fr; height: 1; padding: 0 1; background: $panel; text-style: bold; }
    DoneScreen #done-table { height: 1fr; background: $surface; }
    """
    BINDINGS = [*actions.screen_bindings(actions.DONE), Binding("escape,v", "back", "back")]

    def __init__(self) -> None:
        super().__init__()
        self.table: DataTable[Text] = DataTable(cursor_type="row", id="done-table")
        self.title_label = Label("", id="done-title")
        self.ids: list[int] = []
        self.total = 0
        self.marked: set[int] = set()  # marked with space: merge / discard act on all of them

    def compose(self) -> ComposeResult:
        yield self.title_label
        yield self.table
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            heading = Text(label, justify="right" if key in ("id", "ended", "changes", "files") else "left")
            self.table.add_column(heading, width=width or None, key=key)
        self.reload()
        self.table.focus()

    @property
    def kapp(self) -> KugetsuApp:
        return cast("KugetsuApp", self.app)

    @property
    def selected_task_id(self) -> int | None:
        row = self.table.cursor_row
        return self.ids[row] if 0 <= row < len(self.ids) else None

    def reload(self) -> None:
        """Read again as many rows as are shown (a merge or discard changed one), keeping the
        cursor on its task."""
        keep = self.selected_task_id
        store = self.kapp.store
        self.total = store.counts().get(State.SUCCEEDED, 0)
        tasks = store.succeeded(max(len(self.ids), PAGE))
        self.table.clear()
        self.ids = []
        self._add(tasks)
        if keep in self.ids:
            self.table.move_cursor(row=self.ids.index(keep), animate=False)
        self._title()

    def _add(self, tasks: list[Task]) -> None:
        for task in tasks:
            cells = done_cells(task)
            if task.id in self.marked:
                cells = (self._id_cell(task.id), *cells[1:])
            self.table.add_row(*cells, key=str(task.id))
            self.ids.append(task.id)

    def _id_cell(self, task_id: int) -> Text:
        if task_id in self.marked:
            return Text(f"●{task_id}", style=MARK_STYLE, justify="right", no_wrap=True)
        return look.right(str(task_id))

    # --- marks (see handlers/marks.py) -------------------------------------------------

    def toggle_mark(self) -> None:
        task_id = self.selected_task_id
        if task_id is None:
            self.notify("no task selected", severity="warning", timeout=3)
            return
        self.marked ^= {task_id}
        self.table.update_cell(str(task_id), "id", self._id_cell(task_id))
        self.table.action_cursor_down()

    def unmark(self, task_ids: Iterable[int] | None = None) -> None:
        gone = set(self.marked) if task_ids is None else self.marked & set(task_ids)
        self.marked -= gone
        for task_id in gone & set(self.ids):
            self.table.update_cell(str(task_id), "id", self._id_cell(task_id))

    def shows(self, task_id: int) -> bool:
        return task_id in self.ids

    def _title(self) -> None:
        shown = f" · {len(self.ids)} shown" if len(self.ids) < self.total else ""
        self.title_label.update(f"Done ✓ {self.total}{shown} · the latest first")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= len(self.ids) - 1 and len(self.ids) < self.total:
            self._add(self.kapp.store.succeeded(PAGE, offset=len(self.ids)))  # the next page
            self._title()

    def on_screen_resume(self) -> None:
        if self.ids or self.total:
            self.reload()

    def action_back(self) -> None:
        """escape: drop the marks first, if any; then back to the main screen."""
        if self.marked:
            self.unmark()
            self.notify("marks cleared", timeout=2)
        else:
            self.app.pop_screen()

    async def action_do(self, action_id: str) -> None:
        await actions.run(action_id, self.kapp)
