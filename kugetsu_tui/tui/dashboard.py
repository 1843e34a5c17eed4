"""The main screen: header, the Active / Queued / Failed panes, the log pane, the keys.

The screen lays things out and keeps track of which task is selected (the cursor row
of the pane that was focused last). Its keys come from the table in `actions.py`, where
each one that changes the queue becomes a call to the engine's Control; the screen itself
changes nothing. Because the keys live on this screen, they are inactive while a modal
dialog is open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import events
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input

from kugetsu_tui.engine.model import State
from kugetsu_tui.first_run import agent_to_offer, agents_found
from kugetsu_tui.present import STATE_SYMBOL
from kugetsu_tui.tui import actions
from kugetsu_tui.tui.board import Board
from kugetsu_tui.tui.readings import MachineReading
from kugetsu_tui.tui.widgets.active_pane import ActivePane
from kugetsu_tui.tui.widgets.empty_state import EmptyState
from kugetsu_tui.tui.widgets.failed_pane import FailedPane
from kugetsu_tui.tui.widgets.log_pane import LogPane
from kugetsu_tui.tui.widgets.machine_bar import MachineBar
from kugetsu_tui.tui.widgets.pane_footer import PaneFooter
from kugetsu_tui.tui.widgets.queued_pane import QueuedPane
from kugetsu_tui.tui.widgets.task_table import TaskTable

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

WIDE = 150  # from this many columns on, the log sits beside the tables
SETTLE_FOCUS = 5.0  # seconds after start in which the focus follows the first admissions
PATH_LOOK_EVERY = 5.0  # seconds; the empty state's look at which agents are on PATH
QUEUE_AGE_STEP = 20.0  # seconds; queued ages are coarse, so their cells change rarely
FEW_ACTIVE = 10  # up to this many live tasks, their elapsed times tick every second
MANY_ACTIVE_STEP = 5  # beyond, every this many seconds
# Keys by which a person moves the focus or the cursor; other keys (c, p, ?, …) act on
# the selection and leave it where it is.
MOVED_GRACE = 1.5  # seconds after a refresh moved the cursor off its task: keys wait
MOVING_KEYS = frozenset(
    {"tab", "shift+tab", "up", "down", "left", "right", "pageup", "pagedown", "home", "end"}
)


class FilterInput(Input):
    """The `/` filter box: enter keeps the filter, escape clears it."""

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape":
            event.stop()
            self.value = ""
            self.post_message(self.Submitted(self, ""))


class DashboardScreen(Screen[None]):
    @dataclass
    class FilterChanged(Message):
        """The `/` filter text changed; the app refreshes the panes with it."""

        text: str

    AUTO_FOCUS = ""  # focus_first() decides, once the first board is shown
    BINDINGS = actions.bindings()  # the keys, the footer: all from the one table

    def __init__(self, log_path: Callable[[int], Path]) -> None:
        super().__init__()
        self.log_path = log_path
        self.machine_bar = MachineBar(id="machine")
        self.active = ActivePane(id="active")
        self.queued = QueuedPane(id="queued")
        self.failed = FailedPane(log_path, id="failed")
        self.log_pane = LogPane(id="log")
        self.empty_state = EmptyState(id="empty")
        self.filter_box = FilterInput(placeholder="filter by id, state, agent, branch or prompt", id="filter")
        self.last_table: TaskTable = self.active
        self.text_filter = ""
        self._active_key: object = None
        self._queued_key: object = None
        self._failed_key: object = None
        self._board: Board | None = None
        self._elapsed_ticks = 0
        self._settle_focus_until = 0.0
        self._path_key: object = None
        self.marked: set[int] = set()  # tasks marked with space, acted on together

    def compose(self) -> ComposeResult:
        yield self.machine_bar
        with Container(id="panes"):
            with Vertical(id="tables"):
                yield self.active
                yield self.queued
                yield self.empty_state
                yield self.failed
            yield self.log_pane
        yield self.filter_box
        yield PaneFooter(self.footer_actions, compact=True, show_command_palette=False)

    @property
    def tables(self) -> tuple[TaskTable, ...]:
        return (self.active, self.queued, self.failed)

    # --- showing the board ----------------------------------------------------------

    def show(self, board: Board, generation: int) -> None:
        """Bring every pane up to date with `board`; cells that did not change stay."""
        self._board = board
        self.machine_bar.show(board, None)
        # Each pane redraws only when its own tasks changed (elapsed times tick apart).
        active_key = (board.versions[0], self.text_filter)
        if active_key != self._active_key:
            self._active_key = active_key
            self.active.hold = len(board.active) > FEW_ACTIVE  # (metering steps with the tick)
            self.active.show(board)
        queued_key = (
            board.versions[1],
            int(board.now // QUEUE_AGE_STEP),
            self.text_filter,
            tuple(board.view.wait_reason.values()),
        )
        if queued_key != self._queued_key:
            self._queued_key = queued_key
            self.queued.show(board)
        failed_key = (board.versions[2], self.failed.kind, self.text_filter)
        if failed_key != self._failed_key:
            self._failed_key = failed_key
            self.failed.show(board)
        if self.marked and not board.text_filter:
            self._drop_marks_not_on(board)
        self._show_empty_state(board)
        if self._settle_focus_until:
            self._settle_focus()
        self.sync_selection()
        self.log_pane.poll()

    def _show_empty_state(self, board: Board) -> None:
        """Help in place of an empty queue: nothing queued, nothing live."""
        empty = board.live == 0 and not board.counts.get(State.QUEUED, 0)
        self.empty_state.display = empty
        if empty:
            app = cast("KugetsuApp", self.app)
            # PATH is looked at again when the config changed, or every few seconds.
            key = (id(app.config), int(time.monotonic() // PATH_LOOK_EVERY))
            if key != self._path_key:
                self._path_key = key
                self.empty_state.show(
                    found=agents_found(app.config, app.find_agent),
                    default_agent=app.config.default_agent,
                    offered=agent_to_offer(app.config, app.find_agent),
                    command=app.kugetsu_command,
                    config_path=app.config_path,
                )

    def show_readings(self, reading: MachineReading | None) -> None:
        if self._board is not None:
            self.machine_bar.show(self._board, reading)

    def refresh_active(self) -> None:
        """Every second, as the elapsed times tick. A changed cell redraws the whole table
        (all its rows), so past a few live tasks the times step every few seconds: at 50
        this tick was half the dashboard's idle CPU. Store changes redraw it as well."""
        self._elapsed_ticks += 1
        if self._board is None:
            return
        if len(self._board.active) > FEW_ACTIVE and self._elapsed_ticks % MANY_ACTIVE_STEP:
            return
        self.active.hold = False
        # (the board may be a moment old: the times are of now)
        self.active.show(replace(self._board, now=cast("KugetsuApp", self.app).clock()))

    def focus_first(self) -> None:
        """Start where the first key press matters: the first running task, else the queue.

        A supervisor started with the dashboard admits its first tasks a moment after the
        first paint; for a few seconds, as long as the person has not moved, the focus
        follows them into the Active pane."""
        if self.focused is not None:
            return  # the person got there first
        table = self.active if self.active.row_count else self.queued
        table.focus()
        self.last_table = table
        if table.row_count:
            table.move_cursor(row=0)
        self._settle_focus_until = time.monotonic() + SETTLE_FOCUS if table is self.queued else 0.0
        self.sync_selection()

    def on_key(self, event: events.Key) -> None:
        # A person who moved chose where to be: from now on the focus is theirs. A key that
        # acts (c, then n in the dialog) must not pin the focus to a pane its task is leaving.
        if event.key in MOVING_KEYS:
            self._settle_focus_until = 0.0
            for table in self.tables:
                table.moved_off = None  # where the cursor is now, the person chose

    def _settle_focus(self) -> None:
        untouched = self.focused is self.queued and self.queued.cursor_row == 0
        if time.monotonic() > self._settle_focus_until or not untouched:
            self._settle_focus_until = 0.0
        elif self.active.row_count:
            self._settle_focus_until = 0.0
            self.active.focus()
            self.last_table = self.active
            self.active.move_cursor(row=0)

    # --- marks ----------------------------------------------------------------------

    def toggle_mark(self) -> None:
        """space: mark or unmark the selected task, then move on to the next row."""
        table = self.last_table
        task_id = table.cursor_task_id
        if task_id is None:
            self.notify("no task selected", severity="warning", timeout=3)
            return
        self.marked ^= {task_id}
        self._show_marks()
        table.action_cursor_down()

    def unmark(self, task_ids: Iterable[int] | None = None) -> None:
        """Drop these marks (all of them when None)."""
        if task_ids is None:
            self.marked.clear()
        else:
            self.marked.difference_update(task_ids)
        self._show_marks()

    def shows(self, task_id: int) -> bool:
        """Whether the task is in some pane now (a marked task out of sight is not acted on)."""
        return self._board is not None and self._board.get(task_id) is not None

    def _drop_marks_not_on(self, board: Board) -> None:
        """A marked task that left every pane is no longer in sight: unmark it."""
        gone = {task_id for task_id in self.marked if board.get(task_id) is None}
        if gone:
            self.unmark(gone)

    def _show_marks(self) -> None:
        marked = frozenset(self.marked)
        for table in self.tables:
            if table.marked != marked:
                table.marked = marked
                if self._board is not None:
                    table.show(self._board)

    # --- selection ------------------------------------------------------------------

    def focused_pane(self) -> str | None:
        """Which pane the focus is in (actions.ACTIVE, …, LOG), None elsewhere."""
        panes = {self.active: actions.ACTIVE, self.queued: actions.QUEUED, self.failed: actions.FAILED}
        focused = self.focused
        if focused is self.log_pane:
            return actions.LOG
        return panes.get(focused) if isinstance(focused, TaskTable) else None

    def footer_actions(self) -> frozenset[str]:
        if self.app.screen is not self:
            return frozenset()  # a dialog is in front (see PaneFooter)
        return actions.footer_actions(self.focused_pane())

    def on_screen_suspend(self) -> None:
        self._recompose_footer()

    def on_screen_resume(self) -> None:
        self._recompose_footer()

    def _recompose_footer(self) -> None:
        footer = self.query_one(PaneFooter)
        footer.call_later(footer.recompose)  # in the footer's own context, as Textual does

    @property
    def selected_task_id(self) -> int | None:
        return self.last_table.cursor_task_id

    def moved_off(self) -> int | None:
        """The task the selection was on until a refresh took it out of its pane a moment
        ago (the cursor now on a neighbour the person may not have seen yet), once: asking
        again returns None, so a second press acts on the task now selected."""
        table = self.last_table
        moved, table.moved_off = table.moved_off, None
        if moved is None or time.monotonic() - moved[1] > MOVED_GRACE:
            return None
        return moved[0]

    def sync_selection(self) -> None:
        task_id = self.selected_task_id
        if task_id is None:
            self.log_pane.follow(None, None, "Log · no task selected")
            return
        task = self.last_table.tasks.get(task_id)
        state = f" {STATE_SYMBOL[task.state]} {task.state}" if task else ""
        self.log_pane.follow(task_id, self.log_path(task_id), f"Log · task {task_id}{state}")

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, TaskTable):
            event.widget.moved_off = None  # the person sees where its cursor is now
            self.last_table = event.widget
            self.sync_selection()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.last_table:
            self.sync_selection()

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        await self.action_do("details")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE, "-wide")

    # --- the keys: actions.ACTIONS; these are the ones that only change what is shown --

    async def action_do(self, action_id: str) -> None:
        await actions.run(action_id, cast("KugetsuApp", self.app))

    def focus_log(self) -> None:
        self.log_pane.focus()

    def cycle_failed_kind(self) -> None:
        kind = self.failed.next_kind()
        if self._board is not None:
            self.failed.show(self._board)
        self.notify(f"Failed pane shows {kind}", timeout=2)

    def open_filter(self) -> None:
        self.filter_box.add_class("-shown")
        self.filter_box.focus()

    def clear_filter(self) -> None:
        if self.text_filter or self.filter_box.has_class("-shown"):
            self.filter_box.value = ""
            self._apply_filter("")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is self.filter_box:
            self._apply_filter(event.value, hide=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is self.filter_box:
            self._apply_filter(event.value)

    def _apply_filter(self, text: str, *, hide: bool = True) -> None:
        self.text_filter = text.strip()
        if hide:
            if not self.text_filter:
                self.filter_box.remove_class("-shown")
            self.last_table.focus()
        self.post_message(self.FilterChanged(self.text_filter))
