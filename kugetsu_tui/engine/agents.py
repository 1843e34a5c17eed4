"""What kugetsu knows about the agents it runs: built-in presets, and how to read what an
attempt printed.

The presets make claude, codex and opencode work with no config: non-interactive, allowed
to edit inside the worktree (never beyond it), printing JSON lines. The parsers read an
attempt's log into a `Reading` (the final message, the usage the agent reported, the
errors it reported), and `verdict` turns that plus the exit status into what the
supervisor does: success, a plain failure (retried), a fatal error (not retried), or a
rate limit (the attempt given back, the agent cooling down until the reset it was told).
`next_cooldown` is the rate-limit policy: one episode is one cooldown.

Pure: no I/O, no clock; the supervisor passes the log text and the times in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kugetsu_tui.engine.model import AgentUsage
from kugetsu_tui.engine.text import one_line

OUTPUTS = ("text", "claude-stream-json", "codex-json", "opencode-json")
RESULT_CHARS = 4000  # the final message kept on the task, at most
REASON_CHARS = 300

# Said by the CLIs (or the APIs behind them) when a request was refused for its rate or
# because the service is overloaded: a wait, not a failure of the task.
RATE_LIMIT_PATTERNS: tuple[str, ...] = (
    r"\b429\b",
    r"\b529\b",
    r"rate[ _-]?limit",
    r"too many requests",
    r"overloaded",
    r"usage limit",
)
# Said when no attempt can succeed until a person fixes something: retrying burns attempts.
FATAL_PATTERNS: tuple[str, ...] = (
    r"not logged in",
    r"please run /login",
    r"invalid api key",
    r"incorrect api key",
    r"invalid x-api-key",
    r"authentication_(?:error|failed)",
    r"\b401\b[^\n]*unauthori[sz]ed",
    r"agent command '[^']*' not found on PATH",
)


@dataclass(frozen=True, slots=True)
class Preset:
    command: tuple[str, ...]
    output: str = "text"
    rate_limit: tuple[str, ...] = RATE_LIMIT_PATTERNS
    fatal: tuple[str, ...] = FATAL_PATTERNS
    install: str = ""  # how to get the command, for a message when it is missing


PRESETS: dict[str, Preset] = {
    "opencode": Preset(
        ("opencode", "run", "--format", "json", "{prompt}"),
        "opencode-json",
        install="npm install -g opencode-ai",
    ),
    "claude": Preset(
        (
            "claude",
            "-p",
            "--permission-mode",
            "acceptEdits",
            "--output-format",
            "stream-json",
            "--verbose",
            "{prompt}",
        ),
        "claude-stream-json",
        install="npm install -g @anthropic-ai/claude-code",
    ),
    "codex": Preset(
        ("codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", "{prompt}"),
        "codex-json",
        install="npm install -g @openai/codex",
    ),
    "aider": Preset(("aider", "--yes", "--message", "{prompt}"), install="pip install aider-chat"),
}

MASK = "••••"


def masked(env: Mapping[str, str]) -> dict[str, str]:
    """Environment variables as they may be shown: names only, every value masked."""
    return dict.fromkeys(env, MASK)


# --- reading the log --------------------------------------------------------------------


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
class _Acc:
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
        result = _bounded(self.result, RESULT_CHARS) if self.result is not None else None
        return Reading(result, usage, self.session_id, tuple(self.errors), tuple(self.loose))


def _bounded(text: str, limit: int) -> str:
    # Control characters other than newlines and tabs would act on a terminal: neutralised.
    clean = "".join(c if c in "\n\t" or c.isprintable() else "\ufffd" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


_STATUS = re.compile(r"\b(?:status(?:Code)?\W{0,3}|HTTP\W?)([1-5]\d\d)\b", re.IGNORECASE)


def _status_in(text: str) -> int | None:
    m = _STATUS.search(text)
    return int(m.group(1)) if m else None


def _claude(event: dict[str, Any], acc: _Acc) -> None:
    kind = event.get("type")
    if isinstance(event.get("session_id"), str):
        acc.session_id = event["session_id"]
    if kind == "system" and event.get("subtype") == "api_retry":
        status = event.get("error_status")
        delay = event.get("retry_delay_ms")
        code = str(event.get("error") or "") or None
        acc.errors.append(
            Reported(
                f"API error {status} ({code}), retry {event.get('attempt')} of {event.get('max_retries')}",
                status if isinstance(status, int) else None,
                code,
                float(delay) / 1000 if isinstance(delay, int | float) else None,
            )
        )
    elif kind == "assistant" and event.get("error"):
        texts = [
            c.get("text", "")
            for c in (event.get("message") or {}).get("content") or []
            if isinstance(c, dict)
        ]
        acc.errors.append(
            Reported(" ".join(t for t in texts if t) or str(event["error"]), None, str(event["error"]))
        )
    elif kind == "result":
        if isinstance(event.get("result"), str):
            acc.result = event["result"]
        usage = event.get("usage") or {}
        inputs = [
            usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        total_in = (
            sum(v for v in inputs if isinstance(v, int)) if any(isinstance(v, int) for v in inputs) else None
        )
        acc.add_tokens(total_in, usage.get("output_tokens"), event.get("total_cost_usd"))
        if event.get("is_error"):
            status = event.get("api_error_status")
            acc.errors.append(
                Reported(
                    str(event.get("result") or event.get("subtype")),
                    status if isinstance(status, int) else None,
                )
            )


def _codex(event: dict[str, Any], acc: _Acc) -> None:
    kind = event.get("type")
    if kind == "thread.started" and isinstance(event.get("thread_id"), str):
        acc.session_id = event["thread_id"]
    elif kind == "item.completed":
        item = event.get("item") or {}
        if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
            acc.result = item["text"]
    elif kind == "turn.completed":
        usage = event.get("usage") or {}
        acc.add_tokens(usage.get("input_tokens"), usage.get("output_tokens"))
    elif kind in ("error", "turn.failed"):
        message = event.get("message") if kind == "error" else (event.get("error") or {}).get("message")
        text = str(message or kind)
        if not any(e.text == text for e in acc.errors):  # turn.failed repeats the error
            acc.errors.append(Reported(text, _status_in(text)))


def _opencode(event: dict[str, Any], acc: _Acc) -> None:
    kind = event.get("type")
    if isinstance(event.get("sessionID"), str):
        acc.session_id = event["sessionID"]
    part = event.get("part") or {}
    if kind == "text" and isinstance(part.get("text"), str):
        acc.result = part["text"]
    elif kind == "step_finish":
        tokens = part.get("tokens") or {}
        acc.add_tokens(tokens.get("input"), tokens.get("output"), part.get("cost"))
    elif kind == "error":
        error = event.get("error") or {}
        data = error.get("data") or {}
        status = data.get("statusCode")
        text = str(data.get("message") or error.get("name") or "error")
        acc.errors.append(Reported(text, status if isinstance(status, int) else None, error.get("name")))


_PARSERS = {"claude-stream-json": _claude, "codex-json": _codex, "opencode-json": _opencode}


_ATTEMPT_HEADER = re.compile(r"^--- kugetsu: attempt \d+ ---$", re.MULTILINE)
MISSING_COMMAND = re.compile(r"agent command '[^']*' not found on PATH")


def this_attempt(log: str) -> str:
    """The part of a task's log that its last attempt wrote (after the header the wrapper
    prints before each attempt but the first)."""
    headers = list(_ATTEMPT_HEADER.finditer(log))
    return log[headers[-1].end() :] if headers else log


def is_fatal_text(text: str, patterns: Sequence[str] = FATAL_PATTERNS) -> bool:
    """Whether a line (a spawn failure, say) is an error no retry can fix; a missing
    command always is."""
    return bool(MISSING_COMMAND.search(text)) or _matches(patterns, text)


def read_log(output: str, text: str) -> Reading:
    """Read an attempt's log (JSON lines for the JSON formats; anything else is kept as
    loose lines, as stderr or a plain-text agent prints it)."""
    acc = _Acc()
    parse = _PARSERS.get(output)
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


# --- what the attempt's ending means --------------------------------------------------


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


def _matches(patterns: Sequence[str], text: str) -> bool:
    return any(re.search(p, text, re.IGNORECASE) for p in patterns)


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
    if exited_ok and not timed_out and not reading.errors:
        return Verdict(Outcome.SUCCEEDED, None)
    if exited_ok and not timed_out and reading.result is not None and not _final_error(reading):
        return Verdict(Outcome.SUCCEEDED, None)  # errors retried away, then done
    for e in reversed(reading.errors):
        if _is_fatal(e, fatal):
            return Verdict(Outcome.FATAL, _reason(e.text))
    for line in reversed(reading.loose):
        if _matches(fatal, line):
            return Verdict(Outcome.FATAL, _reason(line))
    for e in reversed(reading.errors):
        if _is_rate_limit(e, rate_limit):
            return Verdict(Outcome.RATE_LIMITED, _reason(e.text), e.retry_after or _retry_after(e.text))
    for line in reversed(reading.loose):
        if _matches(rate_limit, line):
            return Verdict(Outcome.RATE_LIMITED, _reason(line), _retry_after(line))
    if exited_ok and not timed_out:
        return Verdict(Outcome.SUCCEEDED, None)
    return Verdict(Outcome.FAILED, meaningful_line(reading))


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


# --- rate-limit policy -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cooldown:
    """An agent's rate-limit episode: when it began, when it ends, how many in a row."""

    began: float
    until: float
    hits: int
    reported: bool  # `until` is the reset the agent reported, not our backoff


def next_cooldown(
    current: Cooldown | None,
    *,
    now: float,
    attempt_started: float | None,
    reported_at: float,
    retry_after: float | None,
    base: float,
    longest: float,
) -> tuple[Cooldown, bool]:
    """The cooldown after an attempt hit a rate limit, and whether it is a new episode.

    An attempt that started before the current episode began, or that ends while it
    lasts, saw the same limit: it joins the episode (its end moves to a later reset the
    server reported, never doubles). A new episode waits for the reported reset when there
    is one, else `base` doubled per episode in a row, at most `longest`."""
    reset = reported_at + retry_after if retry_after is not None else None
    if current is not None and (
        current.until > now or (attempt_started is not None and attempt_started <= current.began)
    ):
        if reset is not None and reset > current.until:
            return Cooldown(current.began, min(reset, now + longest), current.hits, True), False
        return current, False
    hits = (current.hits if current is not None else 0) + 1
    if reset is not None and reset > now:
        return Cooldown(now, min(reset, now + longest), hits, True), True
    return Cooldown(now, now + min(base * 2 ** (hits - 1), longest), hits, False), True


# --- stalls ---------------------------------------------------------------------------------

STALL_CPU = 1.0  # percent of one core: below it, an agent with no new output is idle


@dataclass(frozen=True, slots=True)
class Activity:
    """When an attempt last showed life: its log grew, or its tree used the CPU."""

    log_size: int
    since: float
    stalled: bool = False


def stall_check(
    before: Activity | None, *, log_size: int, cpu_percent: float | None, now: float, stall_after: float
) -> tuple[Activity, bool | None]:
    """The attempt's activity after one sample, and what changed: True when it has just
    stalled (no new output and under 1% CPU for stall_after), False when a stalled one
    has just come back to life, None otherwise. An unknown CPU reading counts as busy."""
    busy = cpu_percent is None or cpu_percent >= STALL_CPU
    if before is None or log_size != before.log_size or busy:
        return Activity(log_size, now), (False if before is not None and before.stalled else None)
    if not before.stalled and now - before.since >= stall_after:
        return Activity(log_size, before.since, True), True
    return before, None
