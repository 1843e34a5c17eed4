"""An attempt's part of its task's log: the header that opens it and the footer that
closes it (written by the supervisor, so a log read alone tells where each attempt began
and how it ended), the part the last attempt wrote, and that part read with its agent's
parser (JSON lines for the JSON formats; anything else kept as loose lines, as stderr or a
plain-text agent prints it). Pure: the supervisor passes the text and the times in."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from kugetsu_tui.engine.agents import claude, codex, opencode
from kugetsu_tui.engine.agents.reading import Acc, Reading
from kugetsu_tui.engine.model import AgentUsage
from kugetsu_tui.engine.text import one_line

PARSERS: dict[str, Callable[[dict[str, Any], Acc], None]] = {
    "claude-stream-json": claude.read,
    "codex-json": codex.read,
    "opencode-json": opencode.read,
}

_ATTEMPT_HEADER = re.compile(r"^── attempt \d+ · .* ──$", re.MULTILINE)


def attempt_header(attempt: int, agent: str, started: float, resuming: str | None = None) -> str:
    """The line that opens an attempt's part of the log; `resuming` says which session it
    continues ("resuming session ID after a rate limit"), for one that does."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    more = f" · {one_line(resuming)}" if resuming else ""
    return f"── attempt {attempt} · {one_line(agent)} · started {when}{more} ──\n"


def attempt_footer(how: str, seconds: float | None, usage: AgentUsage | None) -> str:
    """The line that closes it: how it ended ("exit 0", "timed out, killed by SIGTERM"),
    how long it ran, and the tokens and cost its agent reported, when it reported any."""
    parts = [one_line(how)]
    if seconds is not None:
        parts.append(_seconds(seconds))
    if usage is not None:
        parts += _usage(usage)
    return f"── {' · '.join(parts)} ──\n"


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{secs:02d}s" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def _usage(usage: AgentUsage) -> list[str]:
    tokens = [
        f"{n} {what}"
        for n, what in ((usage.input_tokens, "tokens in"), (usage.output_tokens, "tokens out"))
        if n is not None
    ]
    return tokens + ([f"${usage.cost_usd:.4f}"] if usage.cost_usd is not None else [])


def this_attempt(log: str) -> str:
    """The part of a task's log that its last attempt wrote (after the last header)."""
    headers = list(_ATTEMPT_HEADER.finditer(log))
    return log[headers[-1].end() :] if headers else log


_MARK = re.compile(r"── [^\n]* ──")


def is_mark(line: str) -> bool:
    """Whether a log line is one of ours (an attempt's header or footer), not the agent's."""
    return _MARK.fullmatch(line.strip()) is not None


_FOOTER = re.compile(r"(?:\A|\n)── [^\n]* ──\n?\Z")


def attempt_output(log: str) -> str:
    """What the last attempt printed: its part of the log without its header and footer."""
    return _FOOTER.sub("", this_attempt(log)).strip("\n")


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
