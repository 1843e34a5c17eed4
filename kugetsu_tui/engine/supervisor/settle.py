"""Settling ended attempts: succeeded, cancelled, or failed -> retried with backoff or
failed for good; an attempt ended by a rate limit is given back and its agent cools
down. A settled task's clean worktree is removed."""

from __future__ import annotations

import asyncio
import signal
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from kugetsu_tui.engine import runner, worktree
from kugetsu_tui.engine.config import format_duration
from kugetsu_tui.engine.executor import Leftovers
from kugetsu_tui.engine.model import LIVE_STATES, Ending, EventType, State, Task, iso
from kugetsu_tui.engine.slots import retry_delay, should_retry
from kugetsu_tui.engine.supervisor import advisor
from kugetsu_tui.engine.supervisor.attempt import Proc, terminate

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


SWEEP_EVERY = 0.5  # seconds between looks for what settled attempts left running

UNKNOWN_EXIT = (
    "exit status unknown: the agent ran to its end, but its exit file is empty or unreadable (a full disk?)"
)


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
    if proc.ending is None and proc.deadline is not None and now >= proc.deadline:
        # Its exit was learned only past its deadline (it ended while no supervisor ran,
        # or while this one was stopped): judged by when it ended, not when that was seen.
        ended = sup.executor.ended_at(task_id)
        if ended is not None and ended >= proc.deadline:
            proc.ending = Ending.TIMEOUT
    if proc.ending is not None:
        sup.executor.kill_strays(task_id, proc.pid)  # its grace ran out with its group's
    if proc.ending is Ending.STOP:
        task = interrupted(sup, task_id, now, "stopped with the supervisor (--stop-agents)", refund=True)
    elif proc.ending is Ending.CANCEL:
        task = cancelled(sup, task_id, now, status)
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
    elif status is None and sup.executor.ended_at(task_id) is not None:
        # Its wrapper saw it end but could not write how (a full disk leaves the exit
        # file empty): the agent ran to its end, so it is not run again.
        task = fail(sup, task_id, now, None, UNKNOWN_EXIT, retry=False)
    elif status is None:
        task = interrupted(sup, task_id, now, "agent vanished without an exit status")
    else:
        task = rate_limited(sup, proc, now, status) or fail(
            sup, task_id, now, status, describe_status(status)
        )
    # Whatever it started that outlives it is ended (in a sweep beside the loop, by the
    # executor), whether it succeeded or not.
    sup.leftovers.append(
        Leftovers(
            task_id, proc.attempt, proc.admitted_at, proc.pid, proc.started, frozenset(proc.descendants)
        )
    )
    if task is not None and task.state.is_settled:
        clean_worktree(sup, task)


def sweep_leftovers(sup: Supervisor, *, now: bool = False) -> None:
    """End what settled attempts left running: one look at the process table, in a thread,
    for all the attempts settled since the last sweep (one at a time, at most every
    SWEEP_EVERY seconds unless now: the look costs about as much as a dispatch)."""
    if not sup.leftovers or sup.sweeping or (not now and time.monotonic() < sup.next_sweep):
        return
    batch, sup.leftovers = sup.leftovers, []
    sup.sweeping = True
    sup.next_sweep = time.monotonic() + SWEEP_EVERY

    async def sweep() -> None:
        try:
            await asyncio.to_thread(sup.executor.end_leftovers, batch)
        finally:
            sup.sweeping = False
            sup.wake()

    sup.in_background(sweep())


def cancelled(sup: Supervisor, task_id: int, now: float, status: int | None = None) -> Task | None:
    """The attempt ended because a person cancelled it: settled as cancelled, never retried."""
    return sup.store.transition(
        task_id,
        State.CANCELLED,
        now=now,
        expect=set(LIVE_STATES),
        event=EventType.TASK_CANCELLED,
        ended_at=now,
        exit_code=status,
        reason="cancelled",
    )


def fail(
    sup: Supervisor, task_id: int, now: float, status: int | None, reason: str, *, retry: bool = True
) -> Task | None:
    """A failed attempt: queued again after a backoff while attempts remain, else failed."""
    task = sup.store.get(task_id)
    if task is None:
        return None
    if task.cancel_requested_at is not None:
        return cancelled(sup, task_id, now, status)  # a cancel was acknowledged: never retried
    live = set(LIVE_STATES)
    if retry and should_retry(task):
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
    if task.cancel_requested_at is not None:
        return cancelled(sup, task_id, now)  # a cancel was acknowledged: finish it
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
    """Remove a settled task's worktree in the background if nothing in it is uncommitted."""
    if task.no_worktree or not task.worktree or not task.repo:
        return
    repo, where = Path(task.repo), Path(task.worktree)

    async def remove() -> None:
        kept = await asyncio.to_thread(worktree.remove_unless_kept, repo, where)
        if kept is None:
            sup.write_or_defer(partial(sup.store.update, task.id, sup.clock(), worktree=None))
        else:
            data = {"worktree": str(where), "reason": kept}
            sup.write_or_defer(partial(sup.store.record, sup.clock(), EventType.WORKTREE_KEPT, task.id, data))

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
    if pattern is None or task is None or task.cancel_requested_at is not None:
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
