"""Settling ended attempts: succeeded, cancelled, or failed -> retried with backoff or
failed for good; an attempt ended by a rate limit is given back, its agent cools down
and runs fewer at once until successes give the slots back (limits.py). Each records why
it ended (`ended_by`: whether the next attempt continues the agent's session). A settled
task's clean worktree is removed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine import agents, review, runner
from kugetsu_tui.engine.agents import Outcome, Verdict
from kugetsu_tui.engine.config import format_duration
from kugetsu_tui.engine.executor import Leftovers
from kugetsu_tui.engine.messages import Ending
from kugetsu_tui.engine.model import LIVE_STATES, EndedBy, EventType, State, Task, iso
from kugetsu_tui.engine.slots import retry_delay, should_retry
from kugetsu_tui.engine.supervisor import advisor, limits
from kugetsu_tui.engine.supervisor.attempt import Proc, terminate
from kugetsu_tui.engine.supervisor.output import describe_status, read_attempt, stalled_reason

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def ending(why: EndedBy) -> dict[str, Any]:
    """The columns a settled attempt leaves for the next one: why it ended (after a rate
    limit, timeout, stall or interruption the next continues the agent's session, see
    commands.resume_of), and no requeue note: that one has been given."""
    return {"ended_by": str(why), "requeue_note": None}


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
    sup.activity.pop(task_id, None)
    # The sampling timer caps logs that grow; this catches what an agent wrote since.
    runner.cap_log(sup.home.log_path(task_id), int(sup.config.max_log))
    if proc.ending is None and _ended_past_deadline(sup, proc, now):
        proc.ending = Ending.TIMEOUT
    verdict = read_attempt(sup, proc, now, status)
    if proc.ending is not None:
        sup.executor.kill_strays(task_id, proc.pid)  # its grace ran out with its group's
        task = _ended_by_us(sup, proc, now, status, verdict)
    else:
        task = _ended_by_itself(sup, proc, now, status, verdict)
    # Whatever it started that outlives it is ended (in a sweep beside the loop, by the
    # executor), whether it succeeded or not.
    sup.leftovers.append(
        Leftovers(
            task_id, proc.attempt, proc.admitted_at, proc.pid, proc.started, frozenset(proc.descendants)
        )
    )
    if task is not None and task.state.is_settled:
        clean_worktree(sup, task)


def _ended_past_deadline(sup: Supervisor, proc: Proc, now: float) -> bool:
    """An exit learned only past the deadline (it ended while no supervisor ran, or while
    this one was stopped) is judged by when it ended, not by when that was seen."""
    if proc.deadline is None or now < proc.deadline:
        return False
    ended = sup.executor.ended_at(proc.task_id)
    return ended is not None and ended >= proc.deadline


def _ended_by_us(
    sup: Supervisor, proc: Proc, now: float, status: int | None, verdict: Verdict
) -> Task | None:
    """An attempt the supervisor ended: how it settles follows why it was ended."""
    task_id = proc.task_id
    if proc.ending is Ending.STOP:
        return interrupted(sup, task_id, now, "stopped with the supervisor (--stop-agents)", refund=True)
    if proc.ending is Ending.CANCEL:
        return cancelled(sup, task_id, now, status)
    if proc.ending is Ending.TIMEOUT:
        timeout = format_duration(proc.timeout) if proc.timeout else "?"
        return ended_badly(sup, proc, now, status, verdict, f"timed out after {timeout}")
    if proc.ending is Ending.STALL:
        return ended_badly(sup, proc, now, status, verdict, stalled_reason(sup, proc))
    return ended_badly(sup, proc, now, status, verdict, verdict.reason or "ended on an error it reported")


def _ended_by_itself(
    sup: Supervisor, proc: Proc, now: float, status: int | None, verdict: Verdict
) -> Task | None:
    """An attempt that ended on its own: succeeded, failed, or gone without a status."""
    task_id = proc.task_id
    if status == 0 and verdict.outcome is Outcome.SUCCEEDED:
        rate_limit_cleared(sup, proc.agent)
        if limits.succeeded(sup, proc, now):
            advisor.publish(sup, now)
        return sup.store.transition(
            task_id,
            State.SUCCEEDED,
            now=now,
            expect=set(LIVE_STATES),
            event=EventType.TASK_COMPLETED,
            ended_at=now,
            exit_code=0,
            reason=None,
            **ending(EndedBy.SUCCEEDED),
        )
    if status is None and sup.executor.ended_at(task_id) is not None:
        # Its wrapper saw it end but could not write how (a full disk leaves the exit
        # file empty): the agent ran to its end, so it is not run again.
        return fail(sup, task_id, now, None, UNKNOWN_EXIT, retry=False)
    if status is None:
        return interrupted(sup, task_id, now, "agent vanished without an exit status")
    return ended_badly(sup, proc, now, status, verdict, failure_reason(status, verdict))


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
        **ending(EndedBy.CANCELLED),
    )


def fail(
    sup: Supervisor,
    task_id: int,
    now: float,
    status: int | None,
    reason: str,
    *,
    retry: bool = True,
    why: EndedBy = EndedBy.FAILED,
) -> Task | None:
    """A failed attempt: queued again after a backoff while attempts remain, else failed.
    `why` says whether it failed or was cut short (a timeout, a stall)."""
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
            **ending(why),
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
        **ending(why),
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
    # An attempt that never got past starting left the session (and note) as they were.
    cut = ending(EndedBy.INTERRUPTED) if task.state is not State.STARTING else {}
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
            **cut,
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
        **cut,
    )


def clean_worktree(sup: Supervisor, task: Task) -> None:
    """In the background: commit a successful attempt's work, record its changes, remove the
    worktree if nothing uncommitted is left in it (and the branch if it changed nothing)."""
    if task.no_worktree or not task.worktree or not task.repo:
        return
    where = Path(task.worktree)

    async def remove() -> None:
        done = await asyncio.to_thread(review.settle_worktree, task, commit=sup.config.worktree_commit)
        sup.write_or_defer(partial(sup.store.update, task.id, sup.clock(), **done.columns(task)))
        if done.kept is not None:
            data = {"worktree": str(where), "reason": done.kept}
            sup.write_or_defer(partial(sup.store.record, sup.clock(), EventType.WORKTREE_KEPT, task.id, data))

    sup.in_background(remove())


# --- rate limits and cooldowns -------------------------------------------------------


# Ended by the supervisor's timers: the agent's work was cut short, not judged a failure.
_CUT_BY: dict[Ending | None, EndedBy] = {Ending.TIMEOUT: EndedBy.TIMEOUT, Ending.STALL: EndedBy.STALLED}


def ended_badly(
    sup: Supervisor, proc: Proc, now: float, status: int | None, verdict: Verdict, reason: str
) -> Task | None:
    """A rate limit (given back), a fatal error (not retried), or a plain failure."""
    if verdict.outcome is Outcome.FATAL:
        line = verdict.reason or reason
        return fatal(sup, proc.agent, proc.task_id, now, status, line, forced=True)
    why = _CUT_BY.get(proc.ending, EndedBy.FAILED)
    return rate_limited(sup, proc, now, status, verdict) or fail(
        sup, proc.task_id, now, status, reason, why=why
    )


def failure_reason(status: int, verdict: Verdict) -> str:
    """ "exit code 1: <the line that says why>", or the exit status alone."""
    said = describe_status(status)
    return f"{said}: {verdict.reason}" if verdict.reason else said


def fatal(
    sup: Supervisor,
    agent: str,
    task_id: int,
    now: float,
    status: int | None,
    line: str,
    *,
    forced: bool = False,
) -> Task | None:
    """An error no retry can fix (a bad key, a missing command): the task fails at once
    with that line; after suspend_after of them in a row the agent is suspended (its
    queued tasks wait with the reason, other agents keep running)."""
    config = sup.config.agents.get(agent)
    if not forced and (config is None or not agents.is_fatal_text(line, config.fatal)):
        return None
    current = sup.store.get(task_id)
    if current is not None and current.cancel_requested_at is not None:
        return cancelled(sup, task_id, now, status)  # a cancel was acknowledged: that wins
    runs = sup.fatal_runs.get(agent, 0) + 1
    sup.fatal_runs[agent] = runs
    task = sup.store.transition(
        task_id,
        State.FAILED,
        now=now,
        expect=set(LIVE_STATES),
        event=EventType.TASK_ERROR,
        exit_code=status,
        reason=f"fatal: {line} (not retried)",
        ended_at=now,
        extra={"fatal": True},
        **ending(EndedBy.FATAL),
    )
    limit = config.suspend_after if config is not None else 1
    if runs >= limit and agent not in sup.suspended:
        why = f"agent {agent} suspended: {line} · fix it, then restart the supervisor"
        sup.suspended[agent] = why
        sup.store.record(now, EventType.SUPERVISOR_WARNING, None, {"agent": agent, "suspended": why})
        sup.store.set_meta({"suspended": {"pid": os.getpid(), "agents": dict(sup.suspended)}}, now)
    return task


def rate_limited(
    sup: Supervisor, proc: Proc, now: float, status: int | None, verdict: Verdict
) -> Task | None:
    """An attempt the agent's output says was rate limited: not a failure. The attempt is
    given back and the agent cools down: until the reset the agent reported, else by
    backoff. Attempts that hit one limit together make one episode, one cooldown."""
    task_id = proc.task_id
    agent = sup.config.agents.get(proc.agent)
    task = sup.store.get(task_id) if verdict.outcome is Outcome.RATE_LIMITED else None
    if agent is None or task is None or task.cancel_requested_at is not None:
        return None
    try:  # the reset is counted from when the agent said it, its log's last write
        reported_at = min(sup.home.log_path(task_id).stat().st_mtime, now)
    except OSError:
        reported_at = now
    before = sup.rate_episodes.get(agent.name)
    cooldown, new = agents.next_cooldown(
        before,
        now=now,
        attempt_started=task.started_at,
        reported_at=reported_at,
        retry_after=verdict.retry_after,
        base=agent.cooldown,
        longest=agent.cooldown_max,
    )
    sup.rate_episodes[agent.name] = cooldown
    slots = limits.rate_limited(sup, agent.name, now) if new else None  # once an episode
    if cooldown.until > now and cooldown != before:
        sup.cooldowns[agent.name] = (cooldown.until, cooldown.hits)
        advisor.publish(sup, now)
    if cooldown.until > now and new:  # an attempt joining the episode may move its end, quietly
        data = {
            "agent": agent.name,
            "until": iso(cooldown.until),
            "seconds": round(cooldown.until - now, 3),
            "hits": cooldown.hits,
            "reset_reported": cooldown.reported,
            "reason": verdict.reason,
            "slots": slots,
        }
        sup.store.record(now, EventType.COOLDOWN_STARTED, None, {**data, "task": task_id})
    source = "reset reported by the agent" if cooldown.reported else "backoff"
    return sup.store.transition(
        task_id,
        State.QUEUED,
        now=now,
        expect=set(LIVE_STATES),
        event=EventType.TASK_RETRYING,
        exit_code=status,
        reason=f"rate limited ({verdict.reason}); cooling down until {clock(cooldown.until)} ({source});"
        " not counted as a failure",
        ended_at=now,
        queued_at=now,
        attempts=max(task.attempts - 1, 0),
        pid=None,
        pid_started=None,
        extra={"rate_limited": True, "cooldown_until": iso(cooldown.until)},
        **ending(EndedBy.RATE_LIMIT),
    )


def rate_limit_cleared(sup: Supervisor, agent: str) -> None:
    """A success: the agent's next rate limit starts its cooldown from the shortest."""
    sup.fatal_runs.pop(agent, None)
    if agent in sup.cooldowns:
        until, _ = sup.cooldowns[agent]
        sup.cooldowns[agent] = (until, 0)
    episode = sup.rate_episodes.get(agent)
    if episode is not None:
        sup.rate_episodes[agent] = dataclasses.replace(episode, hits=0)


def end_cooldowns(sup: Supervisor, now: float) -> None:
    for agent, (until, hits) in list(sup.cooldowns.items()):
        if until and until <= now:
            sup.cooldowns[agent] = (0.0, hits)
            sup.store.record(now, EventType.COOLDOWN_ENDED, None, {"agent": agent, "hits": hits})
            advisor.publish(sup, now)
