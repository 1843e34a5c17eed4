"""Starting admitted tasks: admission (one transaction, under the cap, the memory reserve,
the budget and the cooldowns), then the task's worktree (made in the background), then the spawn of
its attempt through the executor. A task that cannot start settles as a failed attempt."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from kugetsu_tui.engine import agents, budget, markers, runner, worktree
from kugetsu_tui.engine.capacity import admissions_that_fit, estimate_for, gib
from kugetsu_tui.engine.commands import build_command, resume_header
from kugetsu_tui.engine.executor import Launch, Spawned, SpawnError
from kugetsu_tui.engine.home import private_dir
from kugetsu_tui.engine.messages import Ending
from kugetsu_tui.engine.model import EventType, State, Task
from kugetsu_tui.engine.store import disk_full
from kugetsu_tui.engine.supervisor import advisor, cluster, limits, settle
from kugetsu_tui.engine.supervisor.attempt import end, watch, watched

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor

SETUP_DONE = "setup-done"  # in the run folder once `[worktree] setup` succeeded in its worktree


def admit(sup: Supervisor, now: float) -> list[Task]:
    """Mark as many queued tasks starting as the cap allows; they are spawned after commit."""
    if len(sup.procs) + len(sup.starting) >= sup.cap and sup.store.live_count() >= sup.cap:
        return []
    blocked = cluster.block(sup) or budget_block(sup) or advisor.memory_block(sup)
    room = None if blocked else _memory_room(sup)
    if room == 0:
        assert sup.memory is not None
        blocked = (
            f"memory reserve: {gib(sup.memory[1])} available, part of it soon taken by agents "
            f"just started, {gib(sup.config.memory_reserve)} reserve"
        )
    if blocked != sup.admission_blocked:
        sup.admission_blocked = blocked
        advisor.publish(sup, now)
    if blocked:
        return []
    cooling = {agent for agent, (until, _) in sup.cooldowns.items() if until > now} | set(sup.suspended)
    admitted = sup.store.admit(
        sup.cap,
        now,
        room,
        agent_max=limits.agent_max(sup),
        repo_max=sup.config.repo_max_live,
        cooling=cooling,
    )
    for task in admitted:
        # Before the admission commits: an exit file found for a starting task whose pid
        # was never stored (we died in between) is then surely this attempt's.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sup.home.exit_path(task.id))
    return admitted


def budget_block(sup: Supervisor) -> str | None:
    """Why nothing may be admitted: the agents reported spending the budget (fail closed),
    or None. The sums are read again only after a report was entered since (a settle)."""
    if not budget.configured(sup.config):
        return None
    entered = sup.store.spend_reports
    if sup.spent is None or sup.spent[0] != entered:
        sup.spent = (entered, sup.store.spent())
    return budget.exhausted(sup.spent[1], sup.config)


def _memory_room(sup: Supervisor) -> int | None:
    """How many may start now under the memory reserve, or None for no limit.

    Each admission counts what the ones before it will take, in this tick and in the
    ticks before the agents grew: a live agent is expected to take the advisor's figure
    for one agent (else the costliest estimate), less what it was last measured to hold."""
    reserve = sup.config.memory_reserve
    if reserve <= 0 or sup.memory is None:
        return None
    each = sup.suggestion.each_rss if sup.suggestion and sup.suggestion.each_rss else _costliest(sup)
    available = sup.memory[1]
    if available - reserve >= (len(sup.procs) + len(sup.starting) + sup.cap) * each:
        return None  # even if every agent took its share from now: plenty
    to_take = sum(max(each - (task.rss or 0), 0.0) for task in sup.store.live())
    return admissions_that_fit(available - to_take, reserve, each)


def _costliest(sup: Supervisor) -> float:
    return max(estimate_for(sup.config, name)[0] for name in sup.config.agents)


def start(sup: Supervisor, admitted: list[Task]) -> None:
    """Spawn the admitted tasks (or first make their worktrees, in the background)."""
    for task in admitted:
        if task.no_worktree or (
            task.worktree and Path(task.worktree).is_dir() and not _setup_pending(sup, task.id)
        ):
            spawn(sup, task, Path(task.worktree or task.repo or "."))
        else:
            sup.starting.add(task.id)
            sup.in_background(_start_in_worktree(sup, task))


async def _start_in_worktree(sup: Supervisor, task: Task) -> None:
    try:
        where = sup.home.worktree_path(task.id)
        assert task.repo is not None
        fresh = not (where / ".git").exists()
        base = task.base or sup.config.worktree_base
        try:
            branch = await asyncio.to_thread(
                worktree.ensure,
                Path(task.repo),
                where,
                f"kugetsu/{task.id}",
                task.branch,
                base,
                worktree.owner_token(task.id, task.created_at),
            )
        except (worktree.WorktreeError, OSError) as err:
            spawn_failed(sup, task, str(err))
            return
        sup.write_or_defer(
            partial(sup.store.update, task.id, sup.clock(), worktree=str(where), branch=branch)
        )
        run_dir = private_dir(sup.home.run_dir(task.id))
        if fresh:  # a new worktree: whatever setup an earlier one had does not count
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_dir / SETUP_DONE)
        if _setup_pending(sup, task.id):
            failure = await asyncio.to_thread(
                worktree.run_setup,
                sup.config.worktree_setup,
                where,
                run_dir / "log",
                partial(_setup_started, sup, task.id, run_dir),
            )
            sup.setups.pop(task.id, None)
            markers.setup_ended(run_dir)
            if failure is None:
                with contextlib.suppress(OSError):  # (not written: it runs again next attempt)
                    runner.write_private(run_dir / SETUP_DONE, f"{where}\n")
            elif sup.stopping and task.id not in sup.cancel_on_start:
                # Ended by stop_setups: the next supervisor runs it again, the attempt unspent.
                why = "supervisor stopped during the worktree setup"
                sup.write_or_defer(partial(settle.interrupted, sup, task.id, sup.clock(), why, refund=True))
                return
            elif task.id not in sup.cancel_on_start:
                spawn_failed(sup, task, failure)
                return
        # A task cancelled meanwhile is settled as cancelled by spawn, not started: the
        # stored intent is read again, for a cancel that reached the store by another way.
        current = sup.store.get(task.id) or task
        spawn(
            sup,
            task.replace(worktree=str(where), branch=branch, cancel_requested_at=current.cancel_requested_at),
            where,
        )
    finally:
        if task.id not in sup.spawning:  # (else spawn took it over)
            sup.starting.discard(task.id)
        sup.wake()


def _setup_pending(sup: Supervisor, task_id: int) -> bool:
    """A `[worktree] setup` is configured and has not yet succeeded in this task's worktree:
    it runs before every attempt until it has succeeded once."""
    return bool(sup.config.worktree_setup) and not (sup.home.run_dir(task_id) / SETUP_DONE).exists()


def _setup_started(sup: Supervisor, task_id: int, run_dir: Path, group: int) -> None:
    sup.setups[task_id] = group
    with contextlib.suppress(OSError):  # (a full disk: then only this supervisor knows it)
        markers.note_setup(run_dir, group)  # for the next supervisor, should this one die


def end_orphaned_setup(sup: Supervisor, task_id: int) -> None:
    """A setup left running by a supervisor that died: ended before its task is started
    again (in the same folder), by its recorded process group."""
    group = markers.end_orphaned_setup(sup.home.run_dir(task_id))
    if group is not None:
        sup.store.record(
            sup.clock(),
            EventType.SUPERVISOR_WARNING,
            task_id,
            {"error": f"ended the worktree setup (process group {group}) a stopped supervisor left running"},
        )


def cancel_while_starting(sup: Supervisor, task_id: int) -> None:
    """A cancel for a task whose worktree is being made: it is settled instead of spawned."""
    sup.cancel_on_start.add(task_id)
    _end_setup(sup, task_id)  # its worktree setup, if running: ended now, not waited for


def stop_setups(sup: Supervisor) -> None:
    """The supervisor stops: the setups still running are ended rather than waited for.
    Their tasks are queued again without spending the attempt; the setup runs again."""
    for task_id in list(sup.setups):
        _end_setup(sup, task_id)


def _end_setup(sup: Supervisor, task_id: int) -> None:
    setup = sup.setups.get(task_id)
    if setup is not None:
        # The setup runs on this machine whatever the executor: a process group of ours.
        runner.signal_group(setup, signal.SIGTERM)
        assert sup.event_loop is not None
        sup.event_loop.call_later(sup.config.kill_grace, _kill_setup, sup, task_id, setup)


def _kill_setup(sup: Supervisor, task_id: int, group: int) -> None:
    if sup.setups.get(task_id) == group:  # still that very setup, not a reused pid
        runner.signal_group(group, signal.SIGKILL)


def spawn(sup: Supervisor, task: Task, cwd: Path) -> None:
    """Start the task's attempt from a spawn thread: the loop goes on meanwhile (making a
    process waits until it has exec'd, long under load). Until it is watched the task is
    starting (and spawning); a cancel that arrives meanwhile ends it once it is."""
    now = sup.clock()
    if task.id in sup.cancel_on_start or task.cancel_requested_at is not None:
        sup.cancel_on_start.discard(task.id)
        sup.write_or_defer(partial(settle.cancelled, sup, task.id, now))
        return
    sup.starting.add(task.id)
    sup.spawning.add(task.id)
    sup.in_background(_spawn_off_loop(sup, task, cwd, now))


async def _spawn_off_loop(sup: Supervisor, task: Task, cwd: Path, now: float) -> None:
    assert sup.event_loop is not None
    try:
        launch, spawned = await sup.event_loop.run_in_executor(sup.spawner(), _make_attempt, sup, task, cwd)
    except SpawnError as err:
        if not cluster.went_away(sup, task, err, now):
            spawn_failed(sup, task, str(err))
        sup.wake()
        return
    except OSError as err:
        if not disk_full(err):
            sup.wake()
            raise
        # Its prompt file could not be written: not the task's failure. Queued again,
        # the attempt given back; admission waits until there is room.
        sup.out_of_space(err)
        why = "out of disk space before it could start"
        sup.write_or_defer(partial(settle.interrupted, sup, task.id, now, why, refund=True))
        sup.wake()
        return
    finally:
        sup.spawning.discard(task.id)
        sup.starting.discard(task.id)
        cancelled = task.id in sup.cancel_on_start  # while it was being spawned
        sup.cancel_on_start.discard(task.id)
    proc = watched(with_timeout(sup, task), spawned.pid, child=True, started=spawned.started)
    sup.procs[task.id] = proc
    # Written by the next tick, in its one transaction with the settlements and admissions
    # (a wake-up away); until then, and while the disk is full, it waits in memory. The
    # attempt is watched all the same.
    sup.running_marks.append(
        partial(
            sup.store.transition,
            task.id,
            State.RUNNING,
            now=now,
            expect={State.STARTING},
            event=EventType.TASK_STARTED,
            pid=spawned.pid,
            pid_started=spawned.started,
            extra={"argv0": launch.argv[0]},
        )
    )
    watch(sup, proc)
    if cancelled:
        end(sup, proc, Ending.CANCEL, sup.clock())
    sup.wake_soon()  # its RUNNING mark, unless an exit or a request wakes the loop first


def _make_attempt(sup: Supervisor, task: Task, cwd: Path) -> tuple[Launch, Spawned]:
    """In the spawn thread: the run folder, the prompt file, the attempt's header in its
    log and the process."""
    launch = _launch(sup, task, cwd)
    resuming = resume_header(sup.config.agents.get(task.agent), task)
    header = agents.attempt_header(task.attempts, task.agent, task.started_at or sup.clock(), resuming)
    runner.append_to_log(launch.run_dir / "log", header)
    return launch, sup.executor.spawn(launch)


def with_timeout(sup: Supervisor, task: Task) -> Task:
    """The task with the timeout its attempts run under: its own, else its agent's, else
    [queue] timeout."""
    agent = sup.config.agents.get(task.agent)
    timeout = task.timeout or (agent.timeout if agent else None) or sup.config.default_timeout
    return task.replace(timeout=timeout)


def _launch(sup: Supervisor, task: Task, cwd: Path) -> Launch:
    """The attempt as the agent's config says to run it (build_command, the rule the detail
    view shows too); SpawnError for an unknown agent."""
    agent = sup.config.agents.get(task.agent)
    if agent is None:
        raise SpawnError(f"unknown agent {task.agent!r}")
    run_dir = private_dir(sup.home.run_dir(task.id))
    command = build_command(agent, task, cwd, sup.home)
    if command.prompt_file is not None:
        runner.write_private(command.prompt_file, command.prompt)
    env = sup.env | dict(command.env)
    return Launch(
        task.id,
        task.attempts,
        list(command.argv),
        cwd,
        run_dir,
        env,
        command.stdin,
        admitted_at=task.started_at,
        terminal=agent.terminal,
    )


def spawn_failed(sup: Supervisor, task: Task, reason: str) -> None:
    now = sup.clock()
    forced = agents.MISSING_COMMAND.search(reason) is not None  # fatal at once, for any agent
    runner.append_to_log(
        sup.home.log_path(task.id), agents.attempt_footer(f"not started: {reason}", None, None)
    )

    def write() -> None:
        settled = settle.fatal(sup, task.agent, task.id, now, None, reason, forced=forced) or settle.fail(
            sup, task.id, now, None, reason
        )
        if settled is not None and settled.state.is_settled:
            settle.clean_worktree(sup, settled)

    sup.write_or_defer(write)
