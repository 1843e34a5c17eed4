"""Tasks, their states and the one table of allowed transitions.

This module owns the vocabulary of the engine: what a task is, which states exist,
which moves between them are legal, and what an event records. It must never do
I/O; the store persists these values and the supervisor decides when to move them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from kugetsu_tui.errors import UsageError

_MEASURED = ("wall", "cpu_seconds", "peak_rss", "rss", "cpu_percent", "procs")


class State(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_live(self) -> bool:
        return self in LIVE_STATES

    @property
    def is_settled(self) -> bool:
        return self in SETTLED_STATES


LIVE_STATES = frozenset({State.STARTING, State.RUNNING, State.PAUSED})
# The endings that are not a success: what the dashboard's failed pane lists, what a
# person may put back in the queue, and what an `after_any` dependency accepts too.
BAD_ENDINGS = frozenset({State.FAILED, State.CANCELLED, State.EXPIRED})
SETTLED_STATES = BAD_ENDINGS | {State.SUCCEEDED}
REQUEUEABLE_STATES = BAD_ENDINGS

# Every legal move. A live task goes back to QUEUED when an attempt fails and another
# attempt remains (retry with backoff), or when its process vanished without an exit
# status (interrupted). FAILED straight from QUEUED is a dependency or spawn failure.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.STARTING, State.CANCELLED, State.EXPIRED, State.FAILED}),
    State.STARTING: frozenset({State.RUNNING, State.QUEUED, State.FAILED, State.CANCELLED, State.SUCCEEDED}),
    State.RUNNING: frozenset({State.PAUSED, State.SUCCEEDED, State.FAILED, State.QUEUED, State.CANCELLED}),
    State.PAUSED: frozenset({State.RUNNING, State.SUCCEEDED, State.FAILED, State.QUEUED, State.CANCELLED}),
    State.SUCCEEDED: frozenset(),
    State.FAILED: frozenset({State.QUEUED}),
    State.CANCELLED: frozenset({State.QUEUED}),
    State.EXPIRED: frozenset({State.QUEUED}),
}


class IllegalTransition(Exception):
    """An engine bug or a race lost: a task was asked to move where it may not."""

    def __init__(self, task_id: int, old: State, new: State) -> None:
        super().__init__(f"task {task_id}: {old} -> {new} is not a legal transition")
        self.task_id = task_id
        self.old = old
        self.new = new


def check_transition(task_id: int, old: State, new: State) -> None:
    """Raise IllegalTransition unless old -> new is in the table. The only such check."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(task_id, old, new)


class EventType(StrEnum):
    TASK_QUEUED = "task_queued"
    TASK_DEQUEUED = "task_dequeued"
    TASK_STARTED = "task_started"
    TASK_COMPLETED = "task_completed"
    TASK_ERROR = "task_error"
    TASK_RETRYING = "task_retrying"
    TASK_CANCELLED = "task_cancelled"
    TASK_REQUEUED = "task_requeued"
    TASK_EXPIRED = "task_expired"
    TASK_PAUSED = "task_paused"
    TASK_RESUMED = "task_resumed"
    TASK_HELD = "task_held"
    TASK_RELEASED = "task_released"
    TASK_PRIORITY_SET = "task_priority_set"
    TASK_INTERRUPTED = "task_interrupted"
    TASK_ADOPTED = "task_adopted"
    TASK_STALLED = "task_stalled"
    TASK_MERGED = "task_merged"
    TASK_DISCARDED = "task_discarded"
    TASK_NEEDS_INPUT = "task_needs_input"
    TASK_INPUT_GIVEN = "task_input_given"
    CAP_CHANGED = "cap_changed"
    COOLDOWN_STARTED = "cooldown_started"
    COOLDOWN_ENDED = "cooldown_ended"
    HOOK_FAILED = "hook_failed"
    WORKTREE_KEPT = "worktree_kept"
    WORKTREE_REMOVED = "worktree_removed"  # by gc
    BRANCH_REMOVED = "branch_removed"  # by gc; its data names the commit it pointed at
    CONFIG_RELOADED = "config_reloaded"
    CONFIG_ERROR = "config_error"
    CONFIG_OK = "config_ok"
    SUPERVISOR_WARNING = "supervisor_warning"
    SUPERVISOR_STARTED = "supervisor_started"
    SUPERVISOR_STOPPED = "supervisor_stopped"


class EndedBy(StrEnum):
    """Why a task's last attempt ended, as its next attempt needs to know: after a rate
    limit, a timeout, a stall or an interruption the agent's conversation was cut short
    and may be continued; after anything else the next attempt starts afresh."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a plain failure: what the agent did so far is not to build on
    FATAL = "fatal"
    CANCELLED = "cancelled"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    STALLED = "stalled"  # ended by on_stall = "fail": a timeout on silence
    INTERRUPTED = "interrupted"


CUT_SHORT = frozenset({EndedBy.RATE_LIMIT, EndedBy.TIMEOUT, EndedBy.STALLED, EndedBy.INTERRUPTED})


class PromptVia(StrEnum):
    """How an agent is handed its prompt."""

    ARGV = "argv"  # {prompt} in the command, as one argv element
    STDIN = "stdin"  # on the agent's stdin
    FILE = "file"  # {prompt} becomes the path of a private file holding it


class CapMode(StrEnum):
    """Who sets the cap: the config (fixed), a person taking the advisor's suggestion
    (suggest), or the advisor itself (auto)."""

    FIXED = "fixed"
    SUGGEST = "suggest"
    AUTO = "auto"


class OnInterrupt(StrEnum):
    """What becomes of an agent that vanished without an exit status."""

    REQUEUE = "requeue"
    FAIL = "fail"


class MemoryPressure(StrEnum):
    """What the supervisor does when available memory falls under half the reserve."""

    OFF = "off"
    PAUSE_NEWEST = "pause_newest"


def readable(text: str) -> str:
    """Text safe to print and to put in JSON: bytes that were not valid UTF-8 (kept in a
    prompt as surrogate escapes, and passed to the agent as they were) shown as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, or None for unknown."""
    return None if ts is None else _iso(ts)


@lru_cache(maxsize=1024)  # a task's event payloads repeat its creation, queue and start times
def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class AgentUsage:
    """Usage an agent reported of itself; each None when it reported none (never 0 made up)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_json(cls, data: Any) -> AgentUsage | None:
        if not isinstance(data, dict):
            return None
        ints = [
            data.get(k) if isinstance(data.get(k), int) else None for k in ("input_tokens", "output_tokens")
        ]
        cost = data.get("cost_usd")
        return cls(ints[0], ints[1], float(cost) if isinstance(cost, int | float) else None)


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    prompt: str
    agent: str
    repo: str | None
    no_worktree: bool
    priority: int
    max_attempts: int
    timeout: float | None
    state: State
    attempts: int
    held: bool
    created_at: float
    queued_at: float
    not_before: float | None = None
    worktree: str | None = None
    branch: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_started: float | None = None
    updated_at: float = 0.0
    # Usage of the current (or last) attempt, measured; None means not measured.
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    rss: int | None = None
    cpu_percent: float | None = None
    procs: int | None = None
    key: str | None = None  # idempotency key: one queued or live task per key
    base: str | None = None  # the branch or commit its worktree starts from (None: HEAD)
    after_any: bool = False  # run after its dependencies settle, whatever their outcome
    # When a cancel of this live task was acknowledged: a supervisor that dies before the
    # cancel lands leaves it to the next one, which finishes it instead of requeueing.
    cancel_requested_at: float | None = None
    parent: int | None = None  # the task whose agent added this one (KUGETSU_TASK_ID), if any
    # What the last attempt's agent printed, as engine/agents reads it: its final message and
    # the usage it reported (None: it reported none).
    result: str | None = None
    reported_usage: AgentUsage | None = None
    # Where its worktree started (recorded when it settles): the branch (None: a detached
    # commit) and the commit. Its changes against that commit, or None before it ran.
    base_branch: str | None = None
    base_commit: str | None = None
    files_changed: int | None = None
    insertions: int | None = None
    deletions: int | None = None
    commits: int | None = None
    review: str = "unreviewed"  # a Review: what a person did with its work (not a queue state)
    needs_input: str | None = None  # a live task waits for a person: why (notify, or its screen)
    # The agent's own session (claude's session_id, codex's thread_id, opencode's sessionID)
    # as the last attempt's output reported it: what a resumed conversation would continue.
    session_id: str | None = None
    ended_by: str | None = None  # an EndedBy: why the last attempt ended (None: none has)
    requeue_note: str | None = None  # `requeue --note` for the next attempt, until it has run

    def usage(self, now: float) -> dict[str, Any] | None:
        """Usage for status --json: measured (wall, CPU, RSS) and reported by the agent
        (tokens, cost), each None when unknown; None when nothing is known at all."""
        reported = (self.reported_usage or AgentUsage()).to_json()
        if self.peak_rss is None:
            return None if self.reported_usage is None else {**dict.fromkeys(_MEASURED), **reported}
        end = self.ended_at if self.ended_at and not self.is_live else now
        return reported | {
            "wall": round(end - self.started_at, 3) if self.started_at else None,
            "cpu_seconds": self.cpu_seconds,
            "peak_rss": self.peak_rss,
            "rss": self.rss if self.is_live else None,
            "cpu_percent": self.cpu_percent if self.is_live else None,
            "procs": self.procs if self.is_live else None,
        }

    @property
    def is_live(self) -> bool:
        return self.state.is_live

    @property
    def changes(self) -> Changes | None:
        """What its work changed against its base, or None when that is not known yet."""
        if self.commits is None:
            return None
        return Changes(self.files_changed or 0, self.insertions or 0, self.deletions or 0, self.commits)

    def short_prompt(self, width: int = 60) -> str:
        line = " ".join(readable(self.prompt).split())
        return line if len(line) <= width else line[: width - 1] + "…"

    def to_json(self) -> dict[str, Any]:
        """The task as `kugetsu status --json` and event rows show it."""
        return {
            "id": self.id,
            "state": str(self.state),
            "prompt": readable(self.prompt),
            "agent": self.agent,
            "repo": self.repo,
            "worktree": self.worktree,
            "branch": self.branch,
            "priority": self.priority,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "held": self.held,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "timeout": self.timeout,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "not_before": iso(self.not_before),
            "key": self.key,
            # ref: what it was asked to start from (None: HEAD); branch and commit: where it did.
            "base": {"ref": self.base, "branch": self.base_branch, "commit": self.base_commit},
            "parent": self.parent,
            "result": None if self.result is None else readable(self.result),
            "session_id": None if self.session_id is None else readable(self.session_id),
            "changes": changes.to_json() if (changes := self.changes) is not None else None,
            "review": self.review,
        }

    def replace(self, **changes: Any) -> Task:
        return dataclasses.replace(self, **changes)


class Review(StrEnum):
    """What a person did with a settled task's work."""

    UNREVIEWED = "unreviewed"
    MERGED = "merged"
    DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class Changes:
    """A task's work against its base: files touched, lines added and removed, commits."""

    files: int
    insertions: int
    deletions: int
    commits: int

    @property
    def empty(self) -> bool:
        return self.files == 0 and self.commits == 0

    def to_json(self) -> dict[str, int]:
        return {
            "files": self.files,
            "insertions": self.insertions,
            "deletions": self.deletions,
            "commits": self.commits,
        }


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task as `kugetsu add` describes it, validated, before it has an id."""

    prompt: str
    agent: str
    repo: str | None
    no_worktree: bool = False
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    key: str | None = None
    base: str | None = None
    after: tuple[int, ...] = ()
    after_any: bool = False
    parent: int | None = None


class AddRefused(UsageError):
    """A new task the queue will not take: `code` is "queue-full" ([queue] max_queued
    reached) or "max-live-workers" (every slot taken, and the caller asked to fail closed
    rather than queue). Nothing was queued. A UsageError, so every face reports it as one
    line; the CLI gives it an exit code of its own (3): the same add may succeed later."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def requeue_changes(old: str, prompt: str | None, note: str | None) -> dict[str, Any]:
    """The prompt and undelivered note a requeue leaves: an edited prompt, a note, both, or
    neither (the prompt as it was)."""
    changes: dict[str, Any] = {"requeue_note": None}
    edited = prompt is not None and prompt != old
    text = prompt if prompt is not None and edited else old
    if edited:
        changes["prompt"] = changes["requeue_note"] = text
    if note and note.strip():
        changes["prompt"] = f"{text}\n\nNote for this attempt: {note.strip()}"
        changes["requeue_note"] = changes["prompt"] if edited else note.strip()
    return changes
