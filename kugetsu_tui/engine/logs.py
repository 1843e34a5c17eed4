"""Follow a task's log as it grows (`kugetsu logs -f`), across `max_log` cuts.

The supervisor cuts a chatty agent's log in place (runner.cap_log): the file shrinks to a
note that says how many older bytes were cut, followed by the newest output. A reader that
only remembers its offset would then wait past the new end forever. LogTail notices the
cut (the file is shorter than what was read, its first bytes changed, or it is another
file) and goes on from the first byte it has not shown yet, using the cut's note to find it; when it cannot tell, it
shows the new file from its start. It only reads: it never changes a log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

# Written by runner.cap_log at the start of a log it cut.
CUT_NOTE = re.compile(rb"--- kugetsu: (\d+) bytes of older output cut \(max_log\) ---\n")
HEAD = 256  # first bytes remembered: a cut rewrites them even when the file stays long


class LogTail:
    """What is new in one log file since the last read()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0  # bytes of the current file already returned
        self._identity: tuple[int, int] | None = None  # (device, inode) of that file
        self._head = b""  # its first bytes, as last read

    def read(self, limit: int = -1) -> bytes:
        """The bytes written since the last call, at most `limit` of them (b"" when none, or
        no log yet)."""
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                identity = (info.st_dev, info.st_ino)
                if self._identity is not None and identity != self._identity:
                    self.position = 0  # a new file: all of it is new
                elif info.st_size < self.position or f.read(len(self._head)) != self._head:
                    self.position = self._after_cut(f, info.st_size)
                self._identity = identity
                f.seek(self.position)
                chunk = f.read(limit)
                f.seek(0)
                self._head = f.read(min(self.position + len(chunk), HEAD))
        except FileNotFoundError:
            return b""
        self.position += len(chunk)
        return chunk

    def _after_cut(self, f: BinaryIO, size: int) -> int:
        """Where the unseen output starts in a log that was cut since the last read.

        The cut kept the old file's bytes from `cut` on, after a note: the old offset
        `position` is now at len(note) + position - cut. The note itself is shown too (it
        is how a reader learns that output was cut) when output it never showed was cut."""
        f.seek(0)
        head = f.read(200)
        found = CUT_NOTE.match(head)
        if found is None:
            return 0
        cut = int(found.group(1))
        if self.position < cut:
            return 0  # output was cut that was never shown: show the note and what is left
        after = len(found.group(0)) + self.position - cut
        return after if after <= size else 0  # cut again since: start over from the note
