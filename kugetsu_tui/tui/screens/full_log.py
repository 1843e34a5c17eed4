"""A task's log full screen (`L`), with search: `/` asks for text, enter finds it, `n` the
next match and `N` the one before (both wrap); escape closes. It shows the last FULL_READ
bytes of the log and keeps following it while the agent writes, as the log pane does."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from kugetsu_tui.engine.text import printable
from kugetsu_tui.tui.widgets.log_pane import LogPane

FULL_READ = 8 * 2**20  # bytes of a long log shown, its end
FULL_LINES = 100_000
POLL_EVERY = 0.5


class FullLogScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("slash", "search", "search", key_display="/"),
        Binding("n", "next(1)", "next"),
        Binding("N", "next(-1)", "previous"),
    ]

    def __init__(self, task_id: int, path: Path, title: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.path = path
        self.title_text = title
        self.query_text = ""
        self.found: tuple[int, int] | None = None  # (line, column) of the match shown

    def compose(self) -> ComposeResult:
        yield LogPane(id="full-log", max_lines=FULL_LINES)
        yield Label("", id="log-search-status")
        yield Input(
            placeholder="search the log (enter finds, escape backs out)", id="log-search", compact=True
        )
        yield Footer()

    @property
    def pane(self) -> LogPane:
        return self.query_one("#full-log", LogPane)

    def on_mount(self) -> None:
        self.pane.follow(self.task_id, self.path, self.title_text, first_read=FULL_READ)
        self.pane.focus()
        self.set_interval(POLL_EVERY, self.pane.poll)

    def action_close(self) -> None:
        search = self.query_one("#log-search", Input)
        if search.has_focus:  # escape in the search box backs out of the search only
            search.remove_class("-shown")
            self.pane.focus()
            return
        self.dismiss(None)

    def action_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.add_class("-shown")
        search.value = self.query_text
        search.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.remove_class("-shown")
        self.pane.focus()
        self.show_match(None)
        self.query_text = event.value
        self.action_next(1)

    def action_next(self, step: int) -> None:
        """Go to the next (step 1) or previous (-1) match after the one shown."""
        if not self.query_text:
            self.say("/ to search")
            return
        matches = self.matches()
        if not matches:
            self.show_match(None)
            self.say(f"no match for {self.query_text!r}")
            return
        here = self.found or (self.pane.scroll_offset.y, -1)
        if step > 0:
            index = next((i for i, m in enumerate(matches) if m > here), 0)
        else:
            index = next((i for i in range(len(matches) - 1, -1, -1) if matches[i] < here), len(matches) - 1)
        self.show_match(matches[index])
        self.say(
            f"match {index + 1} of {len(matches)} for {self.query_text!r} · line {matches[index][0] + 1}"
        )

    def matches(self) -> list[tuple[int, int]]:
        # Case-insensitive on the line itself: a case-folded copy can change its length
        # (ß → ss), and its columns would not be the line's.
        wanted = re.compile(f"(?=({re.escape(self.query_text)}))", re.IGNORECASE)
        return [(y, m.start()) for y, line in enumerate(self.pane.lines) for m in wanted.finditer(line)]

    def show_match(self, match: tuple[int, int] | None) -> None:
        pane, width = self.pane, len(self.query_text)
        if self.found is not None:
            pane.mark_found(*self.found, self.found[1] + width, on=False)
        self.found = match
        if match is None:
            return
        y, x = match
        pane.mark_found(y, x, x + width, on=True)
        pane.following = False  # a match looked at stays in view while output comes
        pane.scroll_to(y=max(0, y - pane.size.height // 2), animate=False, immediate=True)

    def say(self, text: str) -> None:
        self.query_one("#log-search-status", Label).update(Text(printable(text)))
