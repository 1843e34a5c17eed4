"""What an attempt's log says, as its agent's output format tells: the `Reading` (final
message, reported usage, session id, reported errors, loose lines) and the accumulator
the per-agent parsers fill while the log is read. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kugetsu_tui.engine.model import AgentUsage

RESULT_CHARS = 4000  # the final message kept on the task, at most


@dataclass(frozen=True, slots=True)
class Reported:
    """An error the agent reported: its line, the HTTP status or error code it named, and
    how long the server said to wait (seconds), when it said."""

    text: str
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """What an attempt's log says, as far as its output format tells."""

    result: str | None = None
    usage: AgentUsage | None = None
    session_id: str | None = None
    errors: tuple[Reported, ...] = ()
    loose: tuple[str, ...] = ()  # lines that were not the format's JSON (stderr, text output)


@dataclass
class Acc:
    """Filled by a parser, one JSON event at a time."""

    result: str | None = None
    session_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    errors: list[Reported] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)

    def add_tokens(self, inp: Any, out: Any, cost: Any = None) -> None:
        if isinstance(inp, int):
            self.input_tokens = (self.input_tokens or 0) + inp
        if isinstance(out, int):
            self.output_tokens = (self.output_tokens or 0) + out
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.cost_usd = (self.cost_usd or 0.0) + float(cost)

    def reading(self) -> Reading:
        reported = (self.input_tokens, self.output_tokens, self.cost_usd)
        usage = AgentUsage(*reported) if any(v is not None for v in reported) else None
        result = bounded(self.result, RESULT_CHARS) if self.result is not None else None
        return Reading(result, usage, self.session_id, tuple(self.errors), tuple(self.loose))


def bounded(text: str, limit: int) -> str:
    # Control characters other than newlines and tabs would act on a terminal: neutralised.
    clean = "".join(c if c in "\n\t" or c.isprintable() else "\ufffd" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


_STATUS = re.compile(r"\b(?:status(?:Code)?\W{0,3}|HTTP\W?)([1-5]\d\d)\b", re.IGNORECASE)


def status_in(text: str) -> int | None:
    m = _STATUS.search(text)
    return int(m.group(1)) if m else None
