"""An attempt the supervisor watches, and the three things every job does to one: watch it
for its exit, end it (TERM, then KILL after kill_grace), and learn how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kugetsu_tui.engine.messages import Ending
from kugetsu_tui.engine.model import Task

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


@dataclass(slots=True)
class Proc:
    """An agent attempt this supervisor watches (spawned here, or adopted after a restart)."""

    task_id: int
    agent: str
    pid: int  # the executor's id of the attempt (here: the wrapper's pid and process group)
    child: bool  # our own child (reaped with waitpid) or adopted from an earlier supervisor
    attempt: int = 0
    admitted_at: float | None = None  # tells this run of the task from its earlier ones
    started: float | None = None  # the attempt's start time, as Spawned.started
    timeout: float | None = None  # the task's timeout, seconds
    deadline: float | None = None  # when this attempt times out
    timeout_left: float | None = None  # set while its timeout is paused (waiting for a person)
    ending: Ending | None = None  # set once we started ending it
    kill_at: float | None = None  # when SIGKILL follows SIGTERM
    exited: bool = False
    status: int | None = None  # the wrapper's exit code (-N: killed by signal N)
    # (pid, create time) of every process the meter saw in its tree: ended if alive at settle
    descendants: set[tuple[int, float]] = field(default_factory=set)


def watched(task: Task, pid: int, *, child: bool, started: float | None) -> Proc:
    """The Proc for one attempt of task, with its deadline if the task has a timeout."""
    deadline = task.started_at + task.timeout if task.timeout and task.started_at else None
    return Proc(
        task.id,
        task.agent,
        pid,
        child=child,
        attempt=task.attempts,
        admitted_at=task.started_at,
        started=started,
        timeout=task.timeout,
        deadline=deadline,
    )


def watch(sup: Supervisor, proc: Proc) -> None:
    """Learn of the attempt's exit as soon as it happens (the loop is woken for it)."""

    def on_exit() -> None:
        if not proc.exited:  # (unless poll_exit learned it first)
            exited(sup, proc)
        sup.wake()

    sup.executor.watch(proc.pid, on_exit)


def exited(sup: Supervisor, proc: Proc) -> None:
    proc.exited = True
    proc.status = sup.executor.exit_status(proc.task_id, proc.pid, child=proc.child)


def poll_exit(sup: Supervisor, proc: Proc) -> bool:
    """Has the attempt's process ended, though the loop has not been told yet? Asked before
    any deadline is judged: a supervisor that was stopped (Ctrl-Z, SIGSTOP) wakes with its
    clock past deadlines of agents that ended meanwhile, before their exits are read."""
    if not proc.exited and sup.executor.has_exited(proc.pid):
        sup.executor.unwatch(proc.pid)
        exited(sup, proc)
    return proc.exited


def end(sup: Supervisor, proc: Proc, why: Ending, now: float) -> None:
    """Start ending the attempt; the first reason given decides how it settles."""
    if proc.ending is None:
        proc.ending = why
    terminate(sup, proc, now)


def terminate(sup: Supervisor, proc: Proc, now: float) -> None:
    """SIGTERM the attempt's whole group (waking it if paused); SIGKILL after kill_grace."""
    proc.kill_at = now + sup.config.kill_grace
    sup.executor.terminate(proc.task_id, proc.pid)
