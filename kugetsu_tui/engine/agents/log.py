"""Reading an attempt's log: the part its last attempt wrote, and that part read with its
agent's parser (JSON lines for the JSON formats; anything else kept as loose lines, as
stderr or a plain-text agent prints it). Pure: the supervisor passes the text in."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from kugetsu_tui.engine.agents import claude, codex, opencode
from kugetsu_tui.engine.agents.reading import Acc, Reading

PARSERS: dict[str, Callable[[dict[str, Any], Acc], None]] = {
    "claude-stream-json": claude.read,
    "codex-json": codex.read,
    "opencode-json": opencode.read,
}

_ATTEMPT_HEADER = re.compile(r"^--- kugetsu: attempt \d+ ---$", re.MULTILINE)


def this_attempt(log: str) -> str:
    """The part of a task's log that its last attempt wrote (after the header the wrapper
    prints before each attempt but the first)."""
    headers = list(_ATTEMPT_HEADER.finditer(log))
    return log[headers[-1].end() :] if headers else log


def read_log(output: str, text: str) -> Reading:
    """Read an attempt's log with the parser of its output format."""
    acc = Acc()
    parse = PARSERS.get(output)
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if parse is not None and stripped.startswith("{"):
            try:
                event = json.loads(stripped)
            except ValueError:
                event = None
            if isinstance(event, dict):
                parse(event, acc)
                continue
        acc.loose.append(stripped)
    return acc.reading()
