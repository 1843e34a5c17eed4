"""Carrying out request rows: the actions (cancel, pause, resume, cap) that other processes
(the CLI, a dashboard attached from elsewhere) leave in the store for this supervisor,
because only the supervisor may touch an agent's processes. Each answers with an
ActionResult, stored with the request for whoever asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine.messages import ActionResult, Ending, Request, RequestAction
from kugetsu_tui.engine.model import EventType, State
from kugetsu_tui.engine.supervisor import advisor, start
from kugetsu_tui.engine.supervisor.attempt import end

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


def carry_out_requests(sup: Supervisor, now: float) -> None:
    version = sup.store.data_version()
    if version == sup.data_version:
        return  # no other process wrote anything since we last looked
    sup.data_version = version
    pending = sup.store.pending_requests()
    if pending and sup.running_marks:
        # Marks that wait for a tick's commit are written before any answer: whoever
        # reads an answer sees the attempts that were running when it was given.
        with sup.store.batch():
            sup.write_running_marks()
        sup.running_marks.clear()
    for request in pending:
        result = carry_out(sup, request, now)
        sup.store.finish_request(request.id, result.encode(), now)


def carry_out(sup: Supervisor, request: Request, now: float) -> ActionResult:
    if request.action is RequestAction.CAP:
        return set_cap(sup, int(request.arg or sup.cap), now)
    assert request.task_id is not None
    if request.action is RequestAction.CANCEL:
        return cancel(sup, request.task_id, now)
    if request.action is RequestAction.PAUSE:
        return pause(sup, request.task_id, now)
    return resume(sup, request.task_id, now)


def _ok(message: str, task_id: int | None = None) -> ActionResult:
    return ActionResult(True, message, task_id)


def _refused(message: str, task_id: int | None = None) -> ActionResult:
    return ActionResult(False, message, task_id)


def set_cap(sup: Supervisor, cap: int, now: float, reason: str | None = None) -> ActionResult:
    """Lowering the cap never ends anything: the live set drains down to it."""
    old, sup.cap = sup.cap, cap
    if old != cap:
        data: dict[str, object] = {"cap": cap, "old_cap": old}
        if reason:
            data["reason"] = reason
        sup.store.record(now, EventType.CAP_CHANGED, None, data)
        advisor.publish(sup, now)
    return _ok(f"cap {cap}")


def cancel(sup: Supervisor, task_id: int, now: float) -> ActionResult:
    task = sup.store.get(task_id)
    if task is None:
        return _refused(f"no task {task_id}", task_id)
    if task.state is State.QUEUED:
        done = sup.store.cancel_queued(task_id, now)
        return _ok("cancelled", task_id) if done else _refused(f"task {task_id} changed meanwhile", task_id)
    proc = sup.procs.get(task_id)
    if proc is None and task_id not in sup.starting:
        return _refused(
            f"task {task_id} is {task.state}; only queued or live tasks can be cancelled", task_id
        )
    # Stored before the cancel is acknowledged: should this supervisor die before the
    # attempt has ended, the next one finishes the cancel instead of running it again.
    sup.store.update(task_id, now, cancel_requested_at=now)
    if proc is None:
        start.cancel_while_starting(sup, task_id)
    else:
        end(sup, proc, Ending.CANCEL, now)
    return _ok("cancelling", task_id)


def pause(sup: Supervisor, task_id: int, now: float, reason: str | None = None) -> ActionResult:
    proc = sup.procs.get(task_id)
    task = sup.store.get(task_id)
    if proc is None or task is None or task.state is not State.RUNNING or proc.ending or proc.exited:
        # An agent that exited is not stopped by a signal: it is about to be settled.
        state = "ending" if proc and proc.exited else task.state if task else "unknown"
        return _refused(f"task {task_id} is {state}; only running tasks can be paused", task_id)
    if not sup.executor.pause(proc.pid):
        return _refused(f"task {task_id} is ending; only running tasks can be paused", task_id)
    sup.store.transition(
        task_id,
        State.PAUSED,
        now=now,
        event=EventType.TASK_PAUSED,
        expect={State.RUNNING},
        extra={"why": reason} if reason else None,
    )
    return _ok("paused", task_id)


def resume(sup: Supervisor, task_id: int, now: float) -> ActionResult:
    proc = sup.procs.get(task_id)
    task = sup.store.get(task_id)
    if proc is None or task is None or task.state is not State.PAUSED:
        state = task.state if task else "unknown"
        return _refused(f"task {task_id} is {state}; only paused tasks can be resumed", task_id)
    sup.executor.resume(proc.pid)
    sup.store.transition(task_id, State.RUNNING, now=now, event=EventType.TASK_RESUMED, expect={State.PAUSED})
    return _ok("resumed", task_id)
