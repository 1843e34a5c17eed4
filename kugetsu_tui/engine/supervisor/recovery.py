"""Recovery after a restart: every task the store says is live is taken over by the new
supervisor. A running agent is re-adopted, one that ended while no supervisor ran is
settled from its exit file, one that never started is queued again. Nothing is
forgotten, nothing runs twice. A cancel that was acknowledged before the last supervisor
died is finished here: the attempt is ended and settled as cancelled, never requeued."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine.messages import Ending
from kugetsu_tui.engine.model import EventType, State, Task
from kugetsu_tui.engine.supervisor.attempt import Proc, end, watch, watched
from kugetsu_tui.engine.supervisor.deadlines import time_waited
from kugetsu_tui.engine.supervisor.limits import restore as restore_limits
from kugetsu_tui.engine.supervisor.settle import interrupted, settle
from kugetsu_tui.engine.supervisor.start import end_orphaned_setup, with_timeout

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


def reconcile(sup: Supervisor) -> None:
    """Take over every task the store says is live: re-adopt, settle or requeue it; and
    the agents' limits as rate limits left them (before any success counts toward them)."""
    now = sup.clock()
    restore_limits(sup)
    for stored in sup.store.live():
        task = with_timeout(sup, stored)  # an adopted attempt keeps its default timeout too
        if task.pid is None:
            end_orphaned_setup(sup, task.id)
            _reconcile_unrecorded(sup, task, now)
            continue
        proc = watched(task, task.pid, child=False, started=task.pid_started)
        if sup.executor.is_running(task.pid, task.pid_started):
            sup.procs[task.id] = proc
            sup.store.record(now, EventType.TASK_ADOPTED, task.id, {"pid": task.pid})
            _adopt(sup, task, proc, now)
            continue
        if task.cancel_requested_at is not None:
            proc.ending = Ending.CANCEL
        proc.exited = True
        proc.status = sup.executor.exit_status(task.id, task.pid, child=False)
        if sup.executor.pid_reused(task.pid, task.pid_started):
            # The pid was recycled (a reboot): its group is a stranger's, never to be
            # signalled; ours ended with the agent.
            settle(sup, proc, now)
            continue
        sup.procs[task.id] = proc


def _reconcile_unrecorded(sup: Supervisor, task: Task, now: float) -> None:
    """A task admitted by a supervisor that died before it stored the agent's pid: the
    agent may have started all the same. Adopt it, settle it from its exit file (no
    stale one is left at admission), or queue the task again without spending the
    attempt if it never started."""
    found = sup.executor.find(task.id, task.attempts, task.started_at)
    if found is not None:
        sup.store.transition(
            task.id,
            State.RUNNING,
            now=now,
            expect={State.STARTING},
            event=EventType.TASK_ADOPTED,
            pid=found.pid,
            pid_started=found.started,
        )
        proc = watched(task, found.pid, child=False, started=found.started)
        sup.procs[task.id] = proc
        _adopt(sup, task, proc, now)
        return
    # The wrapper is gone, so its exit file is whole; pid 0: there is no group left to end.
    status = sup.executor.exit_status(task.id, 0, child=False)
    if status is None and sup.executor.ended_at(task.id) is None:
        # (A task whose cancel was acknowledged is settled as cancelled instead.)
        interrupted(sup, task.id, now, "supervisor stopped before the agent started", refund=True)
        return
    proc = watched(task, 0, child=False, started=None)
    proc.exited, proc.status = True, status
    if task.cancel_requested_at is not None:
        proc.ending = Ending.CANCEL
    settle(sup, proc, now)


def _adopt(sup: Supervisor, task: Task, proc: Proc, now: float) -> None:
    """Watch a re-adopted attempt; one whose cancel was acknowledged is ended at once."""
    agent = sup.config.agents.get(task.agent)
    if agent is not None and not agent.timeout_counts_waiting and proc.deadline is not None:
        proc.deadline += time_waited(sup.store.events(task_id=task.id), proc.admitted_at or 0.0, now)
    watch(sup, proc)
    if task.cancel_requested_at is not None:
        end(sup, proc, Ending.CANCEL, now)
