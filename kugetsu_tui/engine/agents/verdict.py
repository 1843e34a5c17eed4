"""What an attempt's ending means, from its exit and its `Reading`: success, a plain
failure (retried), a fatal error (not retried), or a rate limit (the attempt given back,
the agent cooling down), with the line that says why. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from kugetsu_tui.engine.agents.presets import FATAL_PATTERNS, RATE_LIMIT_PATTERNS
from kugetsu_tui.engine.agents.reading import Reading, Reported
from kugetsu_tui.engine.text import one_line

REASON_CHARS = 300
MISSING_COMMAND = re.compile(r"agent command '[^']*' not found on PATH")


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retried while attempts remain
    FATAL = "fatal"  # not retried: a person must fix something first
    RATE_LIMITED = "rate_limited"  # given back; the agent cools down


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str | None  # the meaningful line, for the task's reason
    retry_after: float | None = None  # seconds the server said to wait


_LOOKS_LIKE_ERROR = re.compile(
    r"error|fatal|failed|exception|traceback|denied|invalid|not found", re.IGNORECASE
)
_RETRY_AFTER = re.compile(
    r"retry[-_ ]?after\W{0,3}(\d+(?:\.\d+)?)|try again in (\d+(?:\.\d+)?)\s*s(?:ec)?", re.IGNORECASE
)


def is_fatal_text(text: str, patterns: Sequence[str] = FATAL_PATTERNS) -> bool:
    """Whether a line (a spawn failure, say) is an error no retry can fix; a missing
    command always is."""
    return bool(MISSING_COMMAND.search(text)) or _matches(patterns, text)


def _matches(patterns: Sequence[str], text: str) -> bool:
    combined = _one_pattern(tuple(patterns))
    if combined is not None:
        return combined.search(text) is not None
    return any(re.search(p, text, re.IGNORECASE) for p in patterns)


@lru_cache(maxsize=64)
def _one_pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """The patterns as one alternation: one search per line instead of one per pattern (a
    failed attempt's log tail is searched line by line). None where they cannot be joined
    (a pattern with a flag of its own) or there are none."""
    if not patterns:
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    except re.error:
        return None


def _is_rate_limit(e: Reported, patterns: Sequence[str]) -> bool:
    return (
        e.status in (429, 529) or e.code in ("rate_limit", "overloaded_error") or _matches(patterns, e.text)
    )


def _is_fatal(e: Reported, patterns: Sequence[str]) -> bool:
    return (
        e.status == 401
        or e.code in ("authentication_failed", "invalid_api_key")
        or _matches(patterns, e.text)
    )


def verdict(
    reading: Reading,
    *,
    exited_ok: bool,
    timed_out: bool = False,
    rate_limit: Sequence[str] = RATE_LIMIT_PATTERNS,
    fatal: Sequence[str] = FATAL_PATTERNS,
) -> Verdict:
    """How an attempt ended, from its exit and its log: a clean exit is a success unless the
    agent's own final event says it failed; otherwise a fatal error, then a rate limit
    (also for an attempt ended by its timeout), else a plain failure."""
    clean = exited_ok and not timed_out
    if clean and (not reading.errors or (reading.result is not None and not _final_error(reading))):
        return Verdict(Outcome.SUCCEEDED, None)  # no errors, or errors retried away, then done
    said = _fatal(reading, fatal) or _rate_limited(reading, rate_limit)
    if said is not None:
        return said
    if clean:
        return Verdict(Outcome.SUCCEEDED, None)
    return Verdict(Outcome.FAILED, meaningful_line(reading))


def _fatal(reading: Reading, patterns: Sequence[str]) -> Verdict | None:
    """The last fatal error the agent reported, else the last loose line that is one."""
    for e in reversed(reading.errors):
        if _is_fatal(e, patterns):
            return Verdict(Outcome.FATAL, _reason(e.text))
    for line in reversed(reading.loose):
        if _matches(patterns, line):
            return Verdict(Outcome.FATAL, _reason(line))
    return None


def _rate_limited(reading: Reading, patterns: Sequence[str]) -> Verdict | None:
    """The last rate limit the agent reported (with the wait it was told), else the last
    loose line that says one."""
    for e in reversed(reading.errors):
        if _is_rate_limit(e, patterns):
            return Verdict(Outcome.RATE_LIMITED, _reason(e.text), e.retry_after or _retry_after(e.text))
    for line in reversed(reading.loose):
        if _matches(patterns, line):
            return Verdict(Outcome.RATE_LIMITED, _reason(line), _retry_after(line))
    return None


def reported_trouble(
    reading: Reading,
    *,
    rate_limit: Sequence[str] = RATE_LIMIT_PATTERNS,
    fatal: Sequence[str] = FATAL_PATTERNS,
) -> Verdict | None:
    """For an attempt still running: a fatal error or a rate limit the agent reported in its
    JSON output (not stray lines), which ends the attempt now instead of letting the agent
    retry it silently until its timeout; None when it reported neither."""
    if not reading.errors:
        return None
    said = verdict(Reading(errors=reading.errors), exited_ok=False, rate_limit=rate_limit, fatal=fatal)
    return said if said.outcome in (Outcome.FATAL, Outcome.RATE_LIMITED) else None


def _final_error(reading: Reading) -> bool:
    """Whether the last error is the agent's last word (its result says it failed)."""
    return bool(reading.errors) and reading.result is not None and reading.errors[-1].text == reading.result


def _retry_after(text: str) -> float | None:
    m = _RETRY_AFTER.search(text)
    return float(m.group(1) or m.group(2)) if m else None


def _reason(text: str) -> str:
    return one_line(text)[:REASON_CHARS]


def meaningful_line(reading: Reading) -> str | None:
    """The line that says why an attempt failed: the last error the agent reported, else
    the last line that looks like an error; None when nothing does."""
    if reading.errors:
        return _reason(reading.errors[-1].text)
    for line in reversed(reading.loose):
        if _LOOKS_LIKE_ERROR.search(line):
            return _reason(line)
    return None
