"""Admission policy: what happens after an attempt, and why a queued task still waits.

Pure functions over tasks and settings: the backoff before a retry, whether a failure
is retried, each queued task's position and wait reason. The atomic step that applies
the cap lives in the store (`Store.admit`); this module only explains and decides.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from kugetsu_tui.engine.model import State, Task

MAX_BACKOFF = 3600.0


def retry_delay(base: float, attempts: int) -> float:
    """Exponential backoff: base, 2*base, 4*base … after attempt 1, 2, 3 …, at most an hour."""
    return min(base * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF)


def should_retry(task: Task) -> bool:
    return task.attempts < task.max_attempts


def clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


@dataclass(frozen=True, slots=True)
class QueueView:
    """Where each queued task stands: its 1-based position and why it is not running yet."""

    position: dict[int, int]
    wait_reason: dict[int, str]


def explain_queue(
    queued: Sequence[Task],
    *,
    live: int,
    cap: int,
    now: float,
    supervisor: bool,
    blocked: str | None = None,
) -> QueueView:
    """Positions count the tasks that would be admitted first (held ones have none).

    `queued` must be in admission order (priority desc, then first come). `blocked` is
    why the supervisor admits nothing right now whatever the cap (the memory reserve)."""
    position: dict[int, int] = {}
    reason: dict[int, str] = {}
    free = max(cap - live, 0)
    ready_ahead = 0  # runnable tasks ahead that fit in the free slots
    n = 0
    for task in queued:
        if task.state is not State.QUEUED:
            continue
        if task.held:
            reason[task.id] = "held (kugetsu release to let it run)"
            continue
        n += 1
        position[task.id] = n
        if task.not_before is not None and task.not_before > now:
            reason[task.id] = (
                f"backoff until {clock_text(task.not_before)} (attempt {task.attempts + 1} of {task.max_attempts})"
            )
        elif not supervisor:
            reason[task.id] = "no supervisor running (start one: kugetsu run)"
        elif blocked:
            reason[task.id] = blocked
        elif ready_ahead < free:
            reason[task.id] = "starting"
            ready_ahead += 1
        else:
            reason[task.id] = f"cap full ({live}/{cap} live)"
    return QueueView(position, reason)
