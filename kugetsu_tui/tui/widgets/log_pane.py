"""The log pane: follows `runs/<id>/log` of the selected task, like `tail -f`.

Reads only what was appended since the last look (one stat per refresh when nothing
changed), starts from the last part of a long log, and never reads more than a bounded
chunk per refresh, so a chatty agent cannot stall the dashboard.

It keeps to the end of the output (`following`) until the person scrolls up, and again
once they scroll back to the end. That is its own flag, not Textual's "is the view at
the end": a pane that shrinks (the panes above it grew) leaves the view above the end
without anyone scrolling, and an animated scroll up was undone by the next line.

What an agent printed never reaches the terminal as it was: colours (SGR sequences) are
parsed into styles, every other escape sequence is dropped and other control characters
are shown as `\\xNN` (engine.text.printable), so output cannot retitle the terminal,
clear the screen or reorder text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from rich.cells import cell_len
from rich.style import Style
from rich.text import Span, Text
from textual import events
from textual.strip import Strip
from textual.widgets import Log

from kugetsu_tui.engine.text import printable

FIRST_READ = 32 * 1024  # how much of an existing log to show when a task is selected
CHUNK = 256 * 1024  # at most this much new output per refresh
MAX_LINES = 2000
_SGR = re.compile(r"(\x1b\[[0-9;:]*m)")  # colour and weight: the one sequence kept, as styles
FOUND = Style(reverse=True, bold=True)  # a search's match, in the full-screen log
_SPLITS_LINES = {0x2028: " ", 0x2029: " "}  # printable keeps them; Log would break the line there


def shown_line(raw: str) -> Text:
    """One line of agent output as the pane shows it: colours as styles, nothing raw."""
    raw = raw.rsplit("\r", 1)[-1]  # a progress bar redrawn with carriage returns: its last state
    if "\x1b" not in raw:
        return Text(printable(raw, lines=True).translate(_SPLITS_LINES).expandtabs())
    parts = _SGR.split(raw)
    # Between the colour sequences, everything goes through printable; what is left for
    # from_ansi to read is only SGR, which becomes styles.
    safe = "".join(part if n % 2 else printable(part, lines=True) for n, part in enumerate(parts))
    text = Text.from_ansi(safe.translate(_SPLITS_LINES))
    text.expand_tabs()
    return text


class LogPane(Log):
    def __init__(self, *, id: str | None = None, max_lines: int = MAX_LINES) -> None:
        super().__init__(id=id, max_lines=max_lines, auto_scroll=True)
        self.task_id: int | None = None
        self.path: Path | None = None
        self._offset = 0
        self._partial = ""
        self._title = ""
        self._spans: list[list[Span]] = []  # the colours of each line in Log's _lines
        self.following = True  # keep to the end as output comes (until the person scrolls up)

    # --- what Log shows: plain safe text in its lines, colours kept beside them ----------

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> LogPane:
        shown = [shown_line(line) for line in lines]
        shown = [text for text in shown if text.plain]  # Log drops empty lines itself
        if not self.following and self.is_vertical_scroll_end:
            self.following = True  # the person scrolled back down to the end
        super().write_lines([text.plain for text in shown], scroll_end=False)
        self._spans.extend(list(text.spans) for text in shown)
        if len(self._spans) > len(self.lines):  # Log dropped its oldest lines
            del self._spans[: len(self._spans) - len(self.lines)]
        follow = self.following if scroll_end is None else scroll_end
        if follow and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        return self

    # The person's ways up stop the following, and move at once (an animation still under
    # way when the next line comes would read as "at the end").
    def action_scroll_up(self) -> None:
        self.following = False
        self.scroll_up(animate=False)

    def action_page_up(self) -> None:
        self.following = False
        self.scroll_page_up(animate=False)

    def action_scroll_home(self) -> None:
        self.following = False
        self.scroll_home(animate=False)

    def action_scroll_end(self) -> None:
        self.following = True
        self.scroll_end(animate=False)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.following = False
        super()._on_mouse_scroll_up(event)

    def write(self, data: str, scroll_end: bool | None = None) -> LogPane:
        return self.write_lines(data.splitlines(), scroll_end)

    def clear(self) -> LogPane:
        self._spans.clear()
        super().clear()
        return self

    def _render_line_strip(self, y: int, rich_style: Style) -> Strip:
        # Log renders a line as plain text; a line with colours is rendered here with them.
        spans = self._spans[y] if y < len(self._spans) else None
        if not spans:
            return super()._render_line_strip(y, rich_style)
        line = self.lines[y]
        text = Text(line, no_wrap=True)
        text.stylize(rich_style)
        for span in spans:
            text.stylize(span.style, span.start, span.end)
        selection = self.text_selection
        if selection is not None and (selected := selection.get_span(y - self._clear_y)) is not None:
            start, end = selected
            style = self.screen.get_component_rich_style("screen--selection")
            text.stylize(style, start, len(text) if end == -1 else end)
        return Strip(text.render(self.app.console), cell_len(line))

    def follow(
        self, task_id: int | None, path: Path | None, title: str, *, first_read: int = FIRST_READ
    ) -> None:
        """Show this task's log from (near) its end, at most `first_read` bytes of it; a
        no-op if it is already shown."""
        if title != self._title:
            self._title = title
            self.border_title = Text(title)
        if task_id == self.task_id:
            return
        self.task_id, self.path = task_id, path
        self.following = True
        self._offset = 0
        self._partial = ""
        self.clear()
        if path is None:
            return
        try:
            size = path.stat().st_size
        except OSError:
            self.write_line("(no output yet)")
            return
        if size > first_read:
            self._offset = size - first_read
            self._read(skip_partial_first=True)
        else:
            self._read()
        while self._offset < size and self._read():  # more than one chunk asked for
            pass

    def mark_found(self, y: int, start: int, end: int, *, on: bool) -> None:
        """Show (or stop showing) line y's columns start..end as found by a search."""
        if y >= len(self._spans):
            return
        mark = Span(start, end, FOUND)
        if on:
            self._spans[y].append(mark)
        elif mark in self._spans[y]:
            self._spans[y].remove(mark)
        self.refresh_lines(y)

    def poll(self) -> None:
        """Append what the agent wrote since the last call."""
        if self.path is None:
            return
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size < self._offset:  # replaced or truncated: start over
            self._offset = 0
            self._partial = ""
            self.clear()
        if size > self._offset:
            if self._offset == 0 and self.line_count == 1 and self.lines[0] == "(no output yet)":
                self.clear()
            self._read()

    def _read(self, *, skip_partial_first: bool = False) -> bool:
        """Read one chunk on; whether there was anything to read."""
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(CHUNK)
        except OSError:
            return False
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()
        if skip_partial_first and lines:
            lines = lines[1:]
        if lines:
            self.write_lines([line.rstrip("\r") for line in lines])
        return bool(data)
