"""Settling ended attempts: succeeded, cancelled, or failed -> retried with backoff or
failed for good; an attempt ended by a rate limit is given back and its agent cools
down. A settled task's clean worktree is removed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from kugetsu_tui.engine import review, runner
from kugetsu_tui.engine.config import format_duration
from kugetsu_tui.engine.model import LIVE_STATES, Ending, EventType, State, Task, iso
from kugetsu_tui.engine.slots import retry_delay, should_retry
from kugetsu_tui.engine.supervisor import advisor
from kugetsu_tui.engine.supervisor.attempt import Proc, terminate

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


def settle_exited(sup: Supervisor, now: float) -> None:
    for proc in [p for p in sup.procs.values() if p.exited]:
        if sup.executor.still_running(proc.pid):
            # The agent is gone but something it started is still in its group:
            # end it too before the slot counts as free.
            if proc.kill_at is None:
                terminate(sup, proc, now)
            continue
        del sup.procs[proc.task_id]
        settle(sup, proc, now)


def settle(sup: Supervisor, proc: Proc, now: float) -> None:
    """Move the attempt's task to where its ending says, then clean up after it."""
    task_id, status = proc.task_id, proc.status
    # The sampling timer caps logs that grow; this catches what an agent wrote since.
    runner.cap_log(sup.home.log_path(task_id), int(sup.config.max_log))
    if proc.ending is not None:
        sup.executor.kill_strays(task_id, proc.pid)  # its grace ran out with its group's
    if proc.ending is Ending.STOP:
        task = interrupted(sup, task_id, now, "stopped with the supervisor (--stop-agents)", refund=True)
    elif proc.ending is Ending.CANCEL:
        task = sup.store.transition(
            task_id,
            State.CANCELLED,
            now=now,
            expect=set(LIVE_STATES),
            event=EventType.TASK_CANCELLED,
            ended_at=now,
            exit_code=status,
            reason="cancelled",
        )
    elif proc.ending is Ending.TIMEOUT:
        timeout = format_duration(proc.timeout) if proc.timeout else "?"
        task = fail(sup, task_id, now, status, f"timed out after {timeout}")
    elif status == 0:
        rate_limit_cleared(sup, proc.agent)
        task = sup.store.transition(
            task_id,
            State.SUCCEEDED,
            now=now,
            expect=set(LIVE_STATES),
            event=EventType.TASK_COMPLETED,
            ended_at=now,
            exit_code=0,
            reason=None,
        )
    elif status is None:
        task = interrupted(sup, task_id, now, "agent vanished without an exit status")
    else:
        task = rate_limited(sup, proc, now, status) or fail(
            sup, task_id, now, status, describe_status(status)
        )
    if task is not None and task.state.is_settled:
        clean_worktree(sup, task)


def fail(sup: Supervisor, task_id: int, now: float, status: int | None, reason: str) -> Task | None:
    """A failed attempt: queued again after a backoff while attempts remain, else failed."""
    task = sup.store.get(task_id)
    if task is None:
        return None
    live = set(LIVE_STATES)
    if should_retry(task):
        delay = retry_delay(sup.config.retry_backoff, task.attempts)
        return sup.store.transition(
            task_id,
            State.QUEUED,
            now=now,
            expect=live,
            event=EventType.TASK_RETRYING,
            exit_code=status,
            reason=reason,
            ended_at=now,
            queued_at=now,
            not_before=now + delay,
            pid=None,
            pid_started=None,
            extra={"retry_in": delay},
        )
    return sup.store.transition(
        task_id,
        State.FAILED,
        now=now,
        expect=live,
        event=EventType.TASK_ERROR,
        exit_code=status,
        reason=reason,
        ended_at=now,
    )


def interrupted(
    sup: Supervisor, task_id: int, now: float, reason: str, *, refund: bool = False
) -> Task | None:
    """An attempt that ended with no verdict of its own: queued again (the attempt given
    back if refund), or failed where on_interrupt = "fail" says so."""
    task = sup.store.get(task_id)
    if task is None:
        return None
    attempts = task.attempts - 1 if refund else task.attempts
    if not refund and sup.config.on_interrupt == "fail":
        return sup.store.transition(
            task_id,
            State.FAILED,
            now=now,
            expect=set(LIVE_STATES),
            event=EventType.TASK_INTERRUPTED,
            reason=f"{reason} (on_interrupt = fail)",
            ended_at=now,
            pid=None,
            pid_started=None,
        )
    return sup.store.transition(
        task_id,
        State.QUEUED,
        now=now,
        expect=set(LIVE_STATES),
        event=EventType.TASK_INTERRUPTED,
        reason=reason,
        attempts=max(attempts, 0),
        queued_at=now,
        pid=None,
        pid_started=None,
        ended_at=now,
    )


def clean_worktree(sup: Supervisor, task: Task) -> None:
    """In the background: commit a successful attempt's work, record its changes, remove the
    worktree if nothing uncommitted is left in it (and the branch if it changed nothing)."""
    if task.no_worktree or not task.worktree or not task.repo:
        return
    where = Path(task.worktree)

    async def remove() -> None:
        done = await asyncio.to_thread(review.settle_worktree, task, commit=sup.config.worktree_commit)
        kept = done.kept
        sup.store.update(task.id, sup.clock(), **done.columns(task))
        if kept is not None:
            sup.store.record(
                sup.clock(), EventType.WORKTREE_KEPT, task.id, {"worktree": str(where), "reason": kept}
            )

    sup.in_background(remove())


# --- rate limits and cooldowns -------------------------------------------------------


def rate_limited(sup: Supervisor, proc: Proc, now: float, status: int) -> Task | None:
    """A failed attempt whose log says the agent was rate limited: not a failure. The
    attempt is given back and the agent cools down (exponentially) before its next one."""
    task_id = proc.task_id
    agent = sup.config.agents.get(proc.agent)
    if agent is None or not agent.rate_limit:
        return None
    tail = runner.log_tail(sup.home.log_path(task_id)).lower()
    pattern = next((p for p in agent.rate_limit if p.lower() in tail), None)
    task = sup.store.get(task_id) if pattern is not None else None
    if pattern is None or task is None:
        return None
    _, hits = sup.cooldowns.get(agent.name, (0.0, 0))
    hits += 1
    delay = min(agent.cooldown * 2 ** (hits - 1), agent.cooldown_max)
    until = now + delay
    sup.cooldowns[agent.name] = (until, hits)
    data = {"agent": agent.name, "until": iso(until), "seconds": delay, "hits": hits, "pattern": pattern}
    sup.store.record(now, EventType.COOLDOWN_STARTED, None, {**data, "task": task_id})
    advisor.publish(sup, now)
    return sup.store.transition(
        task_id,
        State.QUEUED,
        now=now,
        expect=set(LIVE_STATES),
        event=EventType.TASK_RETRYING,
        exit_code=status,
        reason=f"rate limited ({pattern!r} in its log); not counted as a failure",
        ended_at=now,
        queued_at=now,
        attempts=max(task.attempts - 1, 0),
        pid=None,
        pid_started=None,
        extra={"rate_limited": True, "cooldown_until": iso(until)},
    )


def rate_limit_cleared(sup: Supervisor, agent: str) -> None:
    """A success: the agent's next rate limit starts its cooldown from the shortest."""
    if agent in sup.cooldowns:
        until, _ = sup.cooldowns[agent]
        sup.cooldowns[agent] = (until, 0)


def end_cooldowns(sup: Supervisor, now: float) -> None:
    for agent, (until, hits) in list(sup.cooldowns.items()):
        if until and until <= now:
            sup.cooldowns[agent] = (0.0, hits)
            sup.store.record(now, EventType.COOLDOWN_ENDED, None, {"agent": agent, "hits": hits})
            advisor.publish(sup, now)


def describe_status(status: int) -> str:
    """An exit status as a task's reason says it: "exit code 3", "killed by SIGKILL"."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    if status > 128:
        try:
            return f"exit code {status} ({signal.Signals(status - 128).name}?)"
        except ValueError:
            pass
    return f"exit code {status}"
