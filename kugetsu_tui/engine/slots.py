"""Admission policy: what happens after an attempt, and why a queued task still waits.

Pure functions over tasks and settings: the backoff before a retry, whether a failure
is retried, each queued task's position and wait reason. The atomic step that applies
the cap lives in the store (`Store.admit`); this module only explains and decides.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from kugetsu_tui.engine.model import BAD_ENDINGS, State, Task

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


@dataclass(frozen=True, slots=True)
class Constraints:
    """Everything besides the cap that can keep a queued task waiting."""

    blocked: str | None = None  # nothing is admitted at all (the memory reserve)
    deps: Mapping[int, Sequence[tuple[int, State]]] = field(default_factory=dict)
    cooling: Mapping[str, float] = field(default_factory=dict)  # agent -> until
    agent_max: Mapping[str, int] = field(default_factory=dict)
    repo_max: Mapping[str, int] = field(default_factory=dict)
    agent_live: Mapping[str, int] = field(default_factory=dict)
    repo_live: Mapping[str, int] = field(default_factory=dict)


def unmet_dependencies(task: Task, deps: Sequence[tuple[int, State]]) -> list[tuple[int, State]]:
    return [
        (d, st) for d, st in deps if not (st is State.SUCCEEDED or (task.after_any and st in BAD_ENDINGS))
    ]


def explain_queue(
    queued: Sequence[Task],
    *,
    live: int,
    cap: int,
    now: float,
    supervisor: bool,
    constraints: Constraints | None = None,
) -> QueueView:
    """Positions count the tasks that would be admitted first (held ones have none).

    `queued` must be in admission order (priority desc, then first come). The first
    reason that applies is given, in the order admission checks them."""
    c = constraints or Constraints()
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
        why = held_back(task, c, now=now, supervisor=supervisor)
        if why is not None:
            reason[task.id] = why
        elif ready_ahead < free:
            reason[task.id] = "starting"
            ready_ahead += 1
        else:
            reason[task.id] = f"cap full ({live}/{cap} live)"
    return QueueView(position, reason)


def held_back(task: Task, c: Constraints, *, now: float, supervisor: bool) -> str | None:
    """What keeps a queued, unheld task from a free slot, the first reason in the order
    admission checks them; None when only the cap can."""
    if task.not_before is not None and task.not_before > now:
        return f"backoff until {clock_text(task.not_before)} (attempt {task.attempts + 1} of {task.max_attempts})"
    unmet = unmet_dependencies(task, c.deps.get(task.id, ()))
    if unmet:
        names = ", ".join(f"{d} ({st})" for d, st in unmet)
        return f"waiting for task{'s' if len(unmet) > 1 else ''} {names}"
    if not supervisor:
        return "no supervisor running (start one: kugetsu run)"
    if c.blocked:
        return c.blocked
    if c.cooling.get(task.agent, 0) > now:
        return f"cooldown: {task.agent} until {clock_text(c.cooling[task.agent])} (rate limited)"
    return _at_limit(task, c)


def _at_limit(task: Task, c: Constraints) -> str | None:
    """The task's agent or repo already has as many live tasks as it may."""
    if task.agent in c.agent_max:
        live, most = c.agent_live.get(task.agent, 0), c.agent_max[task.agent]
        if live >= most:
            return f"agent {task.agent} at its limit ({live}/{most} live)"
    repo = task.repo or ""
    if task.repo in c.repo_max:
        live, most = c.repo_live.get(repo, 0), c.repo_max[repo]
        if live >= most:
            return f"repo at its limit ({live}/{most} live)"
    return None


def waiting_on_a_person(
    queued: Sequence[Task],
    deps: Mapping[int, Sequence[tuple[int, State]]],
    suspended: Collection[str] = (),
) -> dict[int, str]:
    """The queued tasks that cannot run until a person acts, each with why.

    Held, behind such a task (however far down a chain), or for a suspended agent. A task in
    backoff, in a cooldown or behind a task that will settle is not here: time alone lets it
    run. A queue whose every task is here is drained for a run that does not serve forever.
    """
    waiting: dict[int, str] = {}
    # A task only names tasks older than itself, so one pass in id order sees each
    # dependency's verdict before it is needed.
    for task in sorted((t for t in queued if t.state is State.QUEUED), key=lambda t: t.id):
        if task.held:
            waiting[task.id] = f"held (kugetsu release {task.id} to let it run)"
        elif task.agent in suspended:
            waiting[task.id] = f"agent {task.agent} is suspended"
        else:
            behind = [d for d, st in unmet_dependencies(task, deps.get(task.id, ())) if d in waiting]
            if behind:  # "waiting for task 3 (held)", "… (waiting for task 2)"
                waiting[task.id] = f"waiting for task {behind[0]} ({waiting[behind[0]].split(' (')[0]})"
    return waiting
