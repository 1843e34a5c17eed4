"""The log pane: follows `runs/<id>/log` of the selected task, like `tail -f`.

Reads only what was appended since the last look (one stat per refresh when nothing
changed), starts from the last part of a long log, and never reads more than a bounded
chunk per refresh, so a chatty agent cannot stall the dashboard.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Log

FIRST_READ = 32 * 1024  # how much of an existing log to show when a task is selected
CHUNK = 256 * 1024  # at most this much new output per refresh
MAX_LINES = 2000


class LogPane(Log):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, auto_scroll=True)
        self.task_id: int | None = None
        self.path: Path | None = None
        self._offset = 0
        self._partial = ""
        self._title = ""

    def follow(self, task_id: int | None, path: Path | None, title: str) -> None:
        """Show this task's log from (near) its end; a no-op if it is already shown."""
        if title != self._title:
            self._title = title
            self.border_title = Text(title)
        if task_id == self.task_id:
            return
        self.task_id, self.path = task_id, path
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
        if size > FIRST_READ:
            self._offset = size - FIRST_READ
            self._read(skip_partial_first=True)
        else:
            self._read()

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

    def _read(self, *, skip_partial_first: bool = False) -> None:
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(CHUNK)
        except OSError:
            return
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()
        if skip_partial_first and lines:
            lines = lines[1:]
        if lines:
            self.write_lines([line.rstrip("\r") for line in lines])
