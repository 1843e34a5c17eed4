"""`logs`: a task's output, made printable as it is read."""

from __future__ import annotations

import argparse
import codecs
import sys
import time

from kugetsu_tui.commands.context import Context
from kugetsu_tui.engine.logs import LogTail
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError

LOG_CHUNK = 1 << 20  # bytes of a log read and cleaned at a time


class _LogText:
    """An agent's output made printable as it is read: escapes removed, newlines kept.

    Holds back what may be half of something (a UTF-8 character, an escape sequence)
    until the next read completes it, so a cut between reads never lets one through."""

    def __init__(self) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._pending = ""

    def feed(self, data: bytes, final: bool = False) -> str:
        text = self._pending + self._decode.decode(data, final)
        self._pending = ""
        start = text.rfind("\x1b")
        if not final and start >= 0 and len(text) - start < 256 and "\n" not in text[start:]:
            text, self._pending = text[:start], text[start:]
        return printable(text, lines=True)


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    task = ctx.store.get(args.id)
    if task is None:
        raise UsageError(f"no task {args.id} (expected an id listed by `kugetsu status`)")
    path = ctx.home.log_path(args.id)
    out = sys.stdout.buffer
    shown = _LogText()
    tail = LogTail(path)
    while True:
        chunk = tail.read(LOG_CHUNK)
        if chunk:
            out.write(shown.feed(chunk).encode())
            out.flush()
            continue
        if not args.follow:
            break
        task = ctx.store.get(args.id)
        if task is not None and task.state.is_settled:
            break
        time.sleep(0.2)
    out.write(shown.feed(b"", final=True).encode())
    if tail.position == 0:
        state = task.state if task is not None else "gone"
        print(f"kugetsu: task {args.id} ({state}) has no output yet", file=sys.stderr)
    return 0
