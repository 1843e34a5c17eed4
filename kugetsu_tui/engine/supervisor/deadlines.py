"""Deadlines: an attempt past its timeout is ended, an attempt past its kill_grace is
killed, and a queued task that waited longer than expire_after is expired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kugetsu_tui.engine.config import format_duration
from kugetsu_tui.engine.messages import Ending, Event
from kugetsu_tui.engine.model import EventType, State
from kugetsu_tui.engine.supervisor.attempt import Proc, end, poll_exit

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor

EXPIRY_EVERY = 1.0  # seconds between looks for expired tasks (a query, not worth every tick)


def enforce_deadlines(sup: Supervisor, now: float) -> None:
    end_overdue_attempts(sup, now)
    if now >= sup.next_expiry_check:
        sup.next_expiry_check = now + EXPIRY_EVERY
        expire_queued(sup, now)


def end_overdue_attempts(sup: Supervisor, now: float) -> None:
    for proc in sup.procs.values():
        if proc.exited:
            # The agent is gone; what it left in its group is killed when the grace runs out.
            if proc.kill_at is not None and now >= proc.kill_at:
                sup.executor.kill(proc.task_id, proc.pid)
            continue
        if proc.ending is None and proc.deadline is not None and now >= proc.deadline:
            if poll_exit(sup, proc):
                continue  # it ended on its own: settled by when it ended, not ended here
            end(sup, proc, Ending.TIMEOUT, now)
        elif proc.kill_at is not None and now >= proc.kill_at:
            sup.executor.kill(proc.task_id, proc.pid)


def pause_timeout(proc: Proc, now: float) -> None:
    """Stop the attempt's timeout from running (while it waits for a person); what was left
    of it is kept. (A supervisor that adopts the attempt after a restart adds the time its
    events say it waited: time_waited.)"""
    if proc.deadline is not None and proc.timeout_left is None:
        proc.timeout_left = max(0.0, proc.deadline - now)
        proc.deadline = None


def resume_timeout(proc: Proc, now: float) -> None:
    """Run a paused timeout on from where it stood."""
    if proc.timeout_left is not None:
        proc.deadline = now + proc.timeout_left
        proc.timeout_left = None


def time_waited(events: Sequence[Event], since: float, now: float) -> float:
    """Seconds a task's needs-input flag was up since `since`, by its events (raised by
    task_needs_input, lowered by task_input_given); a flag still up counts until now."""
    total, raised = 0.0, None
    for event in events:
        if event.ts < since:
            continue
        if event.type is EventType.TASK_NEEDS_INPUT and raised is None:
            raised = event.ts
        elif event.type is EventType.TASK_INPUT_GIVEN and raised is not None:
            total, raised = total + event.ts - raised, None
    return total + (now - raised if raised is not None else 0.0)


def expire_queued(sup: Supervisor, now: float) -> None:
    for task in sup.store.expired(now - sup.config.expire_after):
        sup.store.transition(
            task.id,
            State.EXPIRED,
            now=now,
            expect={State.QUEUED},
            event=EventType.TASK_EXPIRED,
            ended_at=now,
            reason=f"waited longer than {format_duration(sup.config.expire_after)}",
        )
