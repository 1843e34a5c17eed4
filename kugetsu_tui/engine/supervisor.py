"""The one async loop that runs agents: admit -> spawn -> reap -> settle.

One supervisor per KUGETSU_HOME (it holds the home's flock). It is the only code that
starts, signals or settles agent processes; everyone else (the CLI in another terminal,
a dashboard attached from another process) leaves request rows in the store and pokes
it with SIGUSR1. Each tick runs in one fixed order:

1. carry out request rows (cancel, pause, resume, cap);
2. settle attempts whose process ended (succeeded, retry with backoff, failed);
3. expire queued tasks past `expire_after`; end attempts past their timeout;
4. admit while live < cap (one transaction), then spawn outside the transaction.

The loop sleeps until a child exits (pidfd), a poke arrives, or the next deadline;
never by polling every task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import runner, worktree
from kugetsu_tui.engine.capacity import (
    Machine,
    Smoother,
    Suggestion,
    TreeMeter,
    TreeUsage,
    available_memory,
    gib,
    limits_for,
    profile_in_play,
    read_machine,
    suggest_cap,
)
from kugetsu_tui.engine.config import Config, format_duration, load_config
from kugetsu_tui.engine.home import Home, private_dir
from kugetsu_tui.engine.hooks import Hooks
from kugetsu_tui.engine.model import (
    LIVE_STATES,
    Event,
    EventType,
    Request,
    RequestAction,
    State,
    Task,
    iso,
)
from kugetsu_tui.engine.slots import retry_delay, should_retry
from kugetsu_tui.engine.store import Store
from kugetsu_tui.errors import ConfigError

Clock = Callable[[], float]
IDLE_POLL = 0.5  # how often an idle loop looks for work added by other processes
SETTLE_POLL = 0.05  # while an ended agent's stray children are still being stopped
SAMPLE_EVERY = 2.0  # usage metering and the capacity advisor: their own, slower timer
MEMORY_FRESH = 0.5  # an available-memory reading younger than this guards admission

BAD_OUTCOMES = frozenset({EventType.TASK_ERROR, EventType.TASK_CANCELLED, EventType.TASK_EXPIRED})
GOOD_OUTCOMES = frozenset({EventType.TASK_COMPLETED})


@dataclass(slots=True)
class Proc:
    """An agent attempt this supervisor watches (spawned here, or adopted after a restart)."""

    task_id: int
    agent: str
    pid: int  # the wrapper's pid, which is also the process group id
    child: bool  # our own child (reaped with waitpid) or adopted from an earlier supervisor
    pidfd: int | None = None
    timeout: float | None = None  # the task's timeout, seconds
    deadline: float | None = None  # when this attempt times out
    ending: str | None = None  # "cancel", "timeout" or "stop" once we started ending it
    kill_at: float | None = None  # when SIGKILL follows SIGTERM
    exited: bool = False
    status: int | None = None  # the wrapper's exit code (-N: killed by signal N)


def watched(task: Task, pid: int, *, child: bool) -> Proc:
    """The Proc for one attempt of task, with its deadline if the task has a timeout."""
    deadline = task.started_at + task.timeout if task.timeout and task.started_at else None
    return Proc(task.id, task.agent, pid, child=child, timeout=task.timeout, deadline=deadline)


@dataclass(slots=True)
class RunSummary:
    outcomes: dict[int, EventType] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if any(o in BAD_OUTCOMES for o in self.outcomes.values()) else 0


class Supervisor:
    def __init__(
        self,
        home: Home,
        config: Config,
        *,
        forever: bool = False,
        clock: Clock = time.time,
        install_signals: bool = True,
        on_events: Callable[[list[Event]], None] | None = None,
        stop_agents: bool = False,
    ) -> None:
        self.home = home
        self.config = config
        self.cap = config.cap
        self.forever = forever
        self.clock = clock
        self.install_signals = install_signals
        self.on_events = on_events
        self.stop_agents = stop_agents  # on stop, end the agents (requeued) instead of leaving them
        self.procs: dict[int, Proc] = {}
        self.starting: set[int] = set()  # admitted, worktree being made
        self.cancel_on_start: set[int] = set()
        self.setups: dict[int, int] = {}  # task -> process group of its running worktree setup
        self.summary = RunSummary()
        self.stopping = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: Store | None = None
        self._last_event = 0
        self._data_version = -1
        self._env = dict(os.environ)
        self._next_expiry_check = 0.0
        self._background: set[asyncio.Task[None]] = set()
        self._services: list[asyncio.Task[None]] = []
        self.meter = TreeMeter()
        self.smoother = Smoother()
        self.machine: Machine | None = None
        self.suggestion: Suggestion | None = None
        self.admission_blocked: str | None = None
        self.config_error: str | None = None
        self.pressure_paused: list[int] = []
        self._memory: tuple[float, int] | None = None  # (monotonic time, bytes available)
        self._loaded_signature = self._config_signature()
        self.cooldowns: dict[str, tuple[float, int]] = {}  # agent -> (until, rate limits in a row)
        self.hooks = Hooks(config.hooks, spawn=self._in_background, report=self._hook_failed, clock=clock)

    @property
    def store(self) -> Store:
        assert self._store is not None, "the supervisor is not running"
        return self._store

    # --- lifecycle --------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop admitting and return from run(); agents keep running, to be re-adopted."""
        self.stopping = True
        self._wake.set()

    async def run(self) -> int:
        """Supervise until the queue is drained (or stop(), or forever). Returns the exit code."""
        lock = self.home.lock_supervisor()
        self._loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if self.install_signals else ()
        try:
            self._store = Store(self.home.db_path)
            self._last_event = self.store.last_event_id()
            self.store.record(
                self.clock(), EventType.SUPERVISOR_STARTED, None, {"pid": os.getpid(), "cap": self.cap}
            )
            for sig in signals:
                self._loop.add_signal_handler(sig, self.stop)
            self._loop.add_signal_handler(signal.SIGUSR1, self.wake)
            self._reconcile()
            self._publish(self.clock())
            self._services = [
                self._loop.create_task(self._sample_forever()),
                self._loop.create_task(self._watch_config()),
            ]
            while True:
                self._tick()
                if self.stopping and self.stop_agents and self.procs:
                    for proc in self.procs.values():
                        if proc.ending is None:
                            self._end(proc, "stop", self.clock())
                elif self.stopping or (not self.forever and self._drained()):
                    break
                await self._sleep(self._next_wakeup())
            self.hooks.flush_all()
            # Let worktrees in the making (or being removed) and hooks finish: nothing half-done.
            while self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            self.store.record(
                self.clock(),
                EventType.SUPERVISOR_STOPPED,
                None,
                {"pid": os.getpid(), "live_left_running": len(self.procs)},
            )
            self._emit_events()
        finally:
            for service in self._services:
                service.cancel()
            await asyncio.gather(*self._services, return_exceptions=True)
            for proc in self.procs.values():
                self._unwatch(proc)
            for sig in (*signals, signal.SIGUSR1):
                self._loop.remove_signal_handler(sig)
            if self._store is not None:
                self._store.close()
            lock.release()
        return self.summary.exit_code

    async def _sleep(self, timeout: float) -> None:
        """Until a wake-up (a child exit, a poke, a request) or `timeout` seconds pass.

        A timer that sets the wake-up event, not asyncio.wait_for: that wraps the wait
        in a new task on every tick, a cost paid once per finished agent."""
        assert self._loop is not None
        if not self._wake.is_set():
            timer = self._loop.call_later(timeout, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
        self._wake.clear()

    def _drained(self) -> bool:
        return not self.procs and not self.starting and self.store.runnable_count() == 0

    def _next_wakeup(self) -> float:
        now = self.clock()
        times = [now + IDLE_POLL]
        for proc in self.procs.values():
            if proc.exited:
                times.append(now + SETTLE_POLL)
            if proc.kill_at is not None:
                times.append(proc.kill_at)
            if proc.deadline is not None and proc.ending is None:
                times.append(proc.deadline)
        times.extend(until for until, _ in self.cooldowns.values() if until > now)
        ready_at = self.store.next_ready_at(now)
        if ready_at is not None:
            times.append(ready_at)
        return max(min(times) - now, 0.0)

    # --- the tick ---------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.clock()
        self._carry_out_requests(now)
        # Settling, expiry and admission share one transaction: one commit a tick rather
        # than one per change. Admission stays one atomic step inside it, and nothing is
        # spawned before it is committed.
        with self.store.batch():
            self._settle_exited(now)
            self._enforce_deadlines(now)
            self._end_cooldowns(now)
            for task in self.store.fail_dependants(now):
                self._clean_worktree(task)
            admitted = [] if self.stopping else self._admit(now)
        self._start(admitted)
        self._emit_events()

    def _emit_events(self) -> None:
        events = self.store.events(since=self._last_event)
        if not events:
            return
        self._last_event = events[-1].id
        for event in events:
            kind = EventType(event.type) if event.type in EventType._value2member_map_ else None
            if event.task_id is not None and kind in BAD_OUTCOMES | GOOD_OUTCOMES:
                self.summary.outcomes[event.task_id] = kind
            elif event.task_id is not None and kind is EventType.TASK_REQUEUED:
                self.summary.outcomes.pop(event.task_id, None)
        self.hooks.dispatch(events)
        if self.on_events is not None:
            self.on_events(events)

    # 1. requests -------------------------------------------------------------------

    def _carry_out_requests(self, now: float) -> None:
        version = self.store.data_version()
        if version == self._data_version:
            return  # no other process wrote anything since we last looked
        self._data_version = version
        for request in self.store.pending_requests():
            result = self._carry_out(request, now)
            self.store.finish_request(request.id, result, now)

    def _carry_out(self, request: Request, now: float) -> str:
        if request.action is RequestAction.CAP:
            return self.set_cap(int(request.arg or self.cap), now)
        assert request.task_id is not None
        if request.action is RequestAction.CANCEL:
            return self.cancel(request.task_id, now)
        if request.action is RequestAction.PAUSE:
            return self.pause(request.task_id, now)
        return self.resume(request.task_id, now)

    def set_cap(self, cap: int, now: float, reason: str | None = None) -> str:
        old, self.cap = self.cap, cap
        if old != cap:
            data: dict[str, object] = {"cap": cap, "old_cap": old}
            if reason:
                data["reason"] = reason
            self.store.record(now, EventType.CAP_CHANGED, None, data)
            self._publish(now)
        return f"ok: cap {cap}"

    def cancel(self, task_id: int, now: float) -> str:
        task = self.store.get(task_id)
        if task is None:
            return f"error: no task {task_id}"
        if task.state is State.QUEUED:
            done = self.store.cancel_queued(task_id, now)
            return "ok: cancelled" if done else f"error: task {task_id} changed meanwhile"
        proc = self.procs.get(task_id)
        if task_id in self.starting and proc is None:
            self.cancel_on_start.add(task_id)
            setup = self.setups.get(task_id)
            if setup is not None:  # its worktree setup is running: end it now, not after
                runner.signal_group(setup, signal.SIGTERM)
                assert self._loop is not None
                self._loop.call_later(self.config.kill_grace, self._kill_setup, task_id, setup)
            return "ok: cancelling"
        if proc is None:
            return f"error: task {task_id} is {task.state}; only queued or live tasks can be cancelled"
        self._end(proc, "cancel", now)
        return "ok: cancelling"

    def _kill_setup(self, task_id: int, group: int) -> None:
        if self.setups.get(task_id) == group:  # still that very setup, not a reused pid
            runner.signal_group(group, signal.SIGKILL)

    def pause(self, task_id: int, now: float, reason: str | None = None) -> str:
        proc = self.procs.get(task_id)
        task = self.store.get(task_id)
        if proc is None or task is None or task.state is not State.RUNNING or proc.ending or proc.exited:
            # An agent that exited is not stopped by a signal: it is about to be settled.
            state = "ending" if proc and proc.exited else task.state if task else "unknown"
            return f"error: task {task_id} is {state}; only running tasks can be paused"
        runner.signal_group(proc.pid, signal.SIGSTOP)
        if not runner.is_same_process(proc.pid, None):
            # It exited just before the signal (its exit not yet seen): it is about to be
            # settled, not paused. Whatever it left in its group must go on, to be ended.
            runner.signal_group(proc.pid, signal.SIGCONT)
            return f"error: task {task_id} is ending; only running tasks can be paused"
        self.store.transition(
            task_id,
            State.PAUSED,
            now=now,
            event=EventType.TASK_PAUSED,
            expect={State.RUNNING},
            extra={"why": reason} if reason else None,
        )
        return "ok: paused"

    def resume(self, task_id: int, now: float) -> str:
        proc = self.procs.get(task_id)
        task = self.store.get(task_id)
        if proc is None or task is None or task.state is not State.PAUSED:
            state = task.state if task else "unknown"
            return f"error: task {task_id} is {state}; only paused tasks can be resumed"
        runner.signal_group(proc.pid, signal.SIGCONT)
        self.store.transition(
            task_id, State.RUNNING, now=now, event=EventType.TASK_RESUMED, expect={State.PAUSED}
        )
        return "ok: resumed"

    def _end(self, proc: Proc, why: str, now: float) -> None:
        if proc.ending is None:
            proc.ending = why
        self._terminate(proc, now)

    def _terminate(self, proc: Proc, now: float) -> None:
        """SIGTERM the attempt's whole group (waking it if paused); SIGKILL after kill_grace."""
        proc.kill_at = now + self.config.kill_grace
        runner.signal_group(proc.pid, signal.SIGTERM)
        runner.signal_group(proc.pid, signal.SIGCONT)  # a stopped process cannot act on TERM
        self._signal_strays(proc, signal.SIGTERM)

    def _signal_strays(self, proc: Proc, sig: signal.Signals) -> None:
        """Descendants that left the agent's process group (setsid) are still its own: they
        carry the task's marker in their environment."""
        for pid in runner.stray_processes(self.home.root, proc.task_id, proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                if sig is signal.SIGTERM:
                    os.kill(pid, signal.SIGCONT)

    # 2. reaping ----------------------------------------------------------------------

    def _watch(self, proc: Proc) -> None:
        assert self._loop is not None
        proc.pidfd = runner.open_pidfd(proc.pid)
        if proc.pidfd is None:
            self._on_exit(proc)
        else:
            self._loop.add_reader(proc.pidfd, self._on_exit, proc)

    def _unwatch(self, proc: Proc) -> None:
        if proc.pidfd is not None and self._loop is not None:
            self._loop.remove_reader(proc.pidfd)
            os.close(proc.pidfd)
            proc.pidfd = None

    def _on_exit(self, proc: Proc) -> None:
        """The wrapper ended: collect its status now so no zombie is left."""
        self._unwatch(proc)
        proc.exited = True
        if proc.child:
            proc.status = runner.reap(proc.pid)
        else:
            proc.status = runner.read_exit_file(self.home.run_dir(proc.task_id))
        self._wake.set()

    def _settle_exited(self, now: float) -> None:
        for proc in [p for p in self.procs.values() if p.exited]:
            if runner.group_alive(proc.pid):
                # The agent is gone but something it started is still in its group:
                # end it too before the slot counts as free.
                if proc.kill_at is None:
                    self._terminate(proc, now)
                continue
            del self.procs[proc.task_id]
            self._settle(proc, now)

    def _settle(self, proc: Proc, now: float) -> None:
        task_id, status = proc.task_id, proc.status
        live = set(LIVE_STATES)
        # The sampling timer caps logs that grow; this catches what an agent wrote since.
        runner.cap_log(self.home.log_path(task_id), int(self.config.max_log))
        if proc.ending is not None:
            self._signal_strays(proc, signal.SIGKILL)  # its grace ran out with its group's
        if proc.ending == "stop":
            task = self._interrupted(task_id, now, "stopped with the supervisor (--stop-agents)", refund=True)
        elif proc.ending == "cancel":
            task = self.store.transition(
                task_id,
                State.CANCELLED,
                now=now,
                expect=live,
                event=EventType.TASK_CANCELLED,
                ended_at=now,
                exit_code=status,
                reason="cancelled",
            )
        elif proc.ending == "timeout":
            timeout = format_duration(proc.timeout) if proc.timeout else "?"
            task = self._fail(task_id, now, status, f"timed out after {timeout}")
        elif status == 0:
            self._rate_limit_cleared(proc.agent)
            task = self.store.transition(
                task_id,
                State.SUCCEEDED,
                now=now,
                expect=live,
                event=EventType.TASK_COMPLETED,
                ended_at=now,
                exit_code=0,
                reason=None,
            )
        elif status is None:
            task = self._interrupted(task_id, now, "agent vanished without an exit status")
        else:
            task = self._rate_limited(proc, now, status) or self._fail(
                task_id, now, status, describe_status(status)
            )
        if task is not None and task.state.is_settled:
            self._clean_worktree(task)

    def _fail(self, task_id: int, now: float, status: int | None, reason: str) -> Task | None:
        task = self.store.get(task_id)
        if task is None:
            return None
        live = set(LIVE_STATES)
        if should_retry(task):
            delay = retry_delay(self.config.retry_backoff, task.attempts)
            return self.store.transition(
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
        return self.store.transition(
            task_id,
            State.FAILED,
            now=now,
            expect=live,
            event=EventType.TASK_ERROR,
            exit_code=status,
            reason=reason,
            ended_at=now,
        )

    def _interrupted(self, task_id: int, now: float, reason: str, *, refund: bool = False) -> Task | None:
        task = self.store.get(task_id)
        if task is None:
            return None
        attempts = task.attempts - 1 if refund else task.attempts
        if not refund and self.config.on_interrupt == "fail":
            return self.store.transition(
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
        return self.store.transition(
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

    def _clean_worktree(self, task: Task) -> None:
        if task.no_worktree or not task.worktree or not task.repo:
            return
        repo, where = Path(task.repo), Path(task.worktree)

        async def remove() -> None:
            if await asyncio.to_thread(worktree.remove_if_clean, repo, where):
                self.store.update(task.id, self.clock(), worktree=None)

        self._in_background(remove())

    # 3. deadlines --------------------------------------------------------------------

    def _enforce_deadlines(self, now: float) -> None:
        for proc in self.procs.values():
            if proc.exited:
                if proc.kill_at is not None and now >= proc.kill_at:
                    runner.signal_group(proc.pid, signal.SIGKILL)
                    self._signal_strays(proc, signal.SIGKILL)
                continue
            if proc.ending is None and proc.deadline is not None and now >= proc.deadline:
                self._end(proc, "timeout", now)
            elif proc.kill_at is not None and now >= proc.kill_at:
                runner.signal_group(proc.pid, signal.SIGKILL)
                self._signal_strays(proc, signal.SIGKILL)
        if now >= self._next_expiry_check:
            self._next_expiry_check = now + 1.0
            for task in self.store.expired(now - self.config.expire_after):
                self.store.transition(
                    task.id,
                    State.EXPIRED,
                    now=now,
                    expect={State.QUEUED},
                    event=EventType.TASK_EXPIRED,
                    ended_at=now,
                    reason=f"waited longer than {format_duration(self.config.expire_after)}",
                )

    # 4. admission --------------------------------------------------------------------

    def _admit(self, now: float) -> list[Task]:
        if len(self.procs) + len(self.starting) >= self.cap and self.store.live_count() >= self.cap:
            return []
        blocked = self._memory_block()
        if blocked != self.admission_blocked:
            self.admission_blocked = blocked
            self._publish(now)
        if blocked:
            return []
        cooling = {agent for agent, (until, _) in self.cooldowns.items() if until > now}
        admitted = self.store.admit(
            self.cap,
            now,
            agent_max=self.config.agent_max_live,
            repo_max=self.config.repo_max_live,
            cooling=cooling,
        )
        for task in admitted:
            # Before the admission commits: an exit file found for a starting task whose pid
            # was never stored (we died in between) is then surely this attempt's.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.home.exit_path(task.id))
        return admitted

    def _start(self, admitted: list[Task]) -> None:
        """Spawn the admitted tasks (or first make their worktrees, in the background)."""
        for task in admitted:
            if task.no_worktree or (task.worktree and Path(task.worktree).is_dir()):
                self._spawn(task, Path(task.worktree or task.repo or "."))
            else:
                self.starting.add(task.id)
                self._in_background(self._start_in_worktree(task))

    def _memory_block(self) -> str | None:
        """Why nothing may be admitted now whatever the cap (fail closed), or None."""
        reserve = self.config.memory_reserve
        if reserve <= 0:
            return None
        tick = time.monotonic()
        if self._memory is None or tick - self._memory[0] > MEMORY_FRESH:
            self._memory = (tick, available_memory())
        available = self._memory[1]
        if available < reserve:
            return f"memory reserve: {gib(available)} available, below the {gib(reserve)} reserve"
        return None

    def _in_background(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_in_worktree(self, task: Task) -> None:
        try:
            where = self.home.worktree_path(task.id)
            assert task.repo is not None
            fresh = not (where / ".git").exists()
            base = task.base or self.config.worktree_base
            try:
                branch = await asyncio.to_thread(
                    worktree.ensure, Path(task.repo), where, f"kugetsu/{task.id}", task.branch, base
                )
            except (worktree.WorktreeError, OSError) as err:
                self._spawn_failed(task, str(err))
                return
            self.store.update(task.id, self.clock(), worktree=str(where), branch=branch)
            setup = self.config.worktree_setup
            if fresh and setup:
                log = private_dir(self.home.run_dir(task.id)) / "log"
                failure = await asyncio.to_thread(
                    worktree.run_setup, setup, where, log, partial(self.setups.__setitem__, task.id)
                )
                self.setups.pop(task.id, None)
                if failure is not None and task.id not in self.cancel_on_start:
                    self._spawn_failed(task, failure)
                    return
            # (A task cancelled meanwhile is settled as cancelled by _spawn, not started.)
            self._spawn(task.replace(worktree=str(where), branch=branch), where)
        finally:
            self.starting.discard(task.id)
            self._wake.set()

    def _spawn(self, task: Task, cwd: Path) -> None:
        now = self.clock()
        if task.id in self.cancel_on_start:
            self.cancel_on_start.discard(task.id)
            self.store.transition(
                task.id,
                State.CANCELLED,
                now=now,
                expect={State.STARTING},
                event=EventType.TASK_CANCELLED,
                ended_at=now,
                reason="cancelled",
            )
            return
        agent = self.config.agents.get(task.agent)
        if agent is None:
            self._spawn_failed(task, f"unknown agent {task.agent!r}")
            return
        run_dir = private_dir(self.home.run_dir(task.id))
        command, prompt_arg, stdin = agent.command, task.prompt, None
        if agent.prompt_via != "argv":
            # Prompts too large for argv, or with a NUL byte, go through a private file.
            prompt_file = runner.write_private(run_dir / "prompt", task.prompt)
            prompt_arg = str(prompt_file)
            if agent.prompt_via == "stdin":
                stdin = prompt_file
                command = tuple(part for part in command if part != "{prompt}")
        argv = runner.substitute(
            command, {"prompt": prompt_arg, "task_id": str(task.id), "worktree": str(cwd)}
        )
        env = self._env | {
            "KUGETSU_TASK_ID": str(task.id),
            "KUGETSU_ATTEMPT": str(task.attempts),
            "KUGETSU_HOME": str(self.home.root),
        }
        try:
            spawned = runner.spawn(
                argv, cwd=cwd, run_dir=run_dir, attempt=task.attempts, env=env, stdin=stdin
            )
        except runner.SpawnError as err:
            self._spawn_failed(task, str(err))
            return
        proc = watched(task, spawned.pid, child=True)
        self.procs[task.id] = proc
        self.store.transition(
            task.id,
            State.RUNNING,
            now=now,
            expect={State.STARTING},
            event=EventType.TASK_STARTED,
            pid=spawned.pid,
            pid_started=spawned.started,
            extra={"argv0": argv[0]},
        )
        self._watch(proc)

    def _spawn_failed(self, task: Task, reason: str) -> None:
        now = self.clock()
        settled = self._fail(task.id, now, None, reason)
        if settled is not None and settled.state.is_settled:
            self._clean_worktree(settled)

    # rate limits --------------------------------------------------------------------

    def _rate_limited(self, proc: Proc, now: float, status: int) -> Task | None:
        """A failed attempt whose log says the agent was rate limited: not a failure. The
        attempt is given back and the agent cools down (exponentially) before its next one."""
        task_id = proc.task_id
        agent = self.config.agents.get(proc.agent)
        if agent is None or not agent.rate_limit:
            return None
        tail = runner.log_tail(self.home.log_path(task_id)).lower()
        pattern = next((p for p in agent.rate_limit if p.lower() in tail), None)
        task = self.store.get(task_id) if pattern is not None else None
        if pattern is None or task is None:
            return None
        _, hits = self.cooldowns.get(agent.name, (0.0, 0))
        hits += 1
        delay = min(agent.cooldown * 2 ** (hits - 1), agent.cooldown_max)
        until = now + delay
        self.cooldowns[agent.name] = (until, hits)
        self.store.record(
            now,
            EventType.COOLDOWN_STARTED,
            None,
            {
                "agent": agent.name,
                "until": iso(until),
                "seconds": delay,
                "hits": hits,
                "pattern": pattern,
                "task": task_id,
            },
        )
        self._publish(now)
        return self.store.transition(
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

    def _rate_limit_cleared(self, agent: str) -> None:
        """A success: the agent's next rate limit starts its cooldown from the shortest."""
        if agent in self.cooldowns:
            until, _ = self.cooldowns[agent]
            self.cooldowns[agent] = (until, 0)

    def _end_cooldowns(self, now: float) -> None:
        for agent, (until, hits) in list(self.cooldowns.items()):
            if until and until <= now:
                self.cooldowns[agent] = (0.0, hits)
                self.store.record(now, EventType.COOLDOWN_ENDED, None, {"agent": agent, "hits": hits})
                self._publish(now)

    def _hook_failed(self, data: dict[str, Any]) -> None:
        self.store.record(self.clock(), EventType.HOOK_FAILED, None, data)

    # 5. metering and the capacity advisor ------------------------------------------

    async def _sample_forever(self) -> None:
        while True:
            if self._config_signature() != self._loaded_signature:
                self.reload_config()  # a change the file watcher missed (e.g. before it was ready)
            try:
                await self._sample_once()
            except Exception as err:  # a failed reading must never stop supervision
                self.store.record(
                    self.clock(), EventType.SUPERVISOR_WARNING, None, {"error": f"sampling failed: {err!r}"}
                )
            await asyncio.sleep(SAMPLE_EVERY)

    def _read(self, roots: list[int], tasks: list[int]) -> tuple[Machine, dict[int, TreeUsage]]:
        for task_id in tasks:
            runner.cap_log(self.home.log_path(task_id), int(self.config.max_log))
        return read_machine(), self.meter.sample(roots)

    async def _sample_once(self) -> None:
        roots = {p.pid: p.task_id for p in self.procs.values() if not p.exited}
        machine, trees = await asyncio.to_thread(self._read, list(roots), list(roots.values()))
        now = self.clock()
        self.machine = machine
        self._memory = (time.monotonic(), machine.mem_available)
        self.store.record_usage(
            [
                (
                    roots[pid],
                    {
                        "cpu_seconds": u.cpu_seconds,
                        "rss": u.rss,
                        "cpu_percent": u.cpu_percent,
                        "procs": u.procs,
                    },
                )
                for pid, u in trees.items()
                if pid in roots
            ],
            now,
        )
        agents_cpu = sum(u.cpu_percent or 0.0 for u in trees.values()) / 100
        raw = suggest_cap(
            machine,
            limits_for(self.config),
            profile_in_play(self.store, self.config),
            len(self.procs) + len(self.starting),
            agents_cpu,
        )
        smoothed = self.smoother.update(raw.cap)
        reason = raw.reason
        if smoothed != raw.cap:
            reason += f"; holding {smoothed} until {raw.cap} has held a while (no flapping)"
        self.suggestion = Suggestion(smoothed, reason)
        if self.config.cap_mode == "auto" and self.suggestion.cap != self.cap:
            self.set_cap(self.suggestion.cap, now, reason=raw.reason)
        self._relieve_memory_pressure(machine, now)
        self._publish(now)

    def _relieve_memory_pressure(self, machine: Machine, now: float) -> None:
        """memory_pressure = "pause_newest": under half the reserve, pause the newest agent;
        once memory is back above the reserve, resume the ones paused for it."""
        if self.config.memory_pressure != "pause_newest":
            return
        reserve = self.config.memory_reserve
        if machine.mem_available < reserve / 2:
            running = [t for t in self.store.live() if t.state is State.RUNNING and t.id in self.procs]
            if running:
                newest = max(running, key=lambda t: (t.started_at or 0, t.id))
                if self.pause(
                    newest.id, now, reason=f"memory pressure: {gib(machine.mem_available)} available"
                ).startswith("ok"):
                    self.pressure_paused.append(newest.id)
        elif machine.mem_available > reserve and self.pressure_paused:
            self.resume(self.pressure_paused.pop(0), now)

    def _publish(self, now: float) -> None:
        """What status and attached dashboards show about this supervisor."""
        self.store.set_meta(
            {
                "supervisor_pid": os.getpid(),
                "cap": self.cap,
                "cap_mode": self.config.cap_mode,
                "suggested_cap": self.suggestion.cap if self.suggestion else None,
                "cap_reason": self.suggestion.reason if self.suggestion else None,
                "machine": self.machine.to_json() if self.machine else None,
                "admission_blocked": self.admission_blocked,
                "config_error": self.config_error,
                "cooldowns": {a: iso(u) for a, (u, _) in self.cooldowns.items() if u > now},
            },
            now,
        )

    # --- config hot reload ------------------------------------------------------------

    def _config_signature(self) -> tuple[int, int] | None:
        if self.config.path is None:
            return None
        try:
            info = self.config.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    async def _watch_config(self) -> None:
        path = self.config.path
        if path is None or not path.parent.is_dir():
            return
        from watchfiles import awatch

        name = path.name
        async for _changes in awatch(
            path.parent,
            watch_filter=lambda _c, p: Path(p).name == name,
            debounce=50,
            step=50,
            recursive=False,
        ):
            self.reload_config()

    def reload_config(self) -> None:
        """Apply the config file as it is now; a broken one keeps the last good in force."""
        assert self.config.path is not None
        now = self.clock()
        self._loaded_signature = self._config_signature()
        try:
            new = load_config(self.config.path)
        except ConfigError as err:
            self.config_error = str(err)
            self.store.record(now, EventType.CONFIG_ERROR, None, {"error": str(err)})
            self._publish(now)
            return
        old, self.config, self.config_error = self.config, new, None
        if new == old:
            return
        self.smoother.current = None  # a deliberate change: follow the next reading at once
        self.hooks.hooks = list(new.hooks)
        self.store.record(now, EventType.CONFIG_RELOADED, None, {"path": str(new.path)})
        if new.cap_mode != "auto" and new.cap != self.cap:
            self.set_cap(new.cap, now, reason="config reloaded")
        self._publish(now)
        self._wake.set()

    # --- crash recovery -----------------------------------------------------------------

    def _reconcile(self) -> None:
        """Take over every task the store says is live: re-adopt, settle or requeue it."""
        now = self.clock()
        for task in self.store.live():
            if task.pid is None:
                self._reconcile_unrecorded(task, now)
                continue
            proc = watched(task, task.pid, child=False)
            if runner.is_same_process(task.pid, task.pid_started):
                self.procs[task.id] = proc
                self.store.record(now, EventType.TASK_ADOPTED, task.id, {"pid": task.pid})
                self._watch(proc)
            else:
                proc.exited = True
                proc.status = runner.read_exit_file(self.home.run_dir(task.id))
                now_started = runner.start_time(task.pid)
                if (
                    now_started is not None
                    and task.pid_started is not None
                    and not runner.same_start(task.pid_started, now_started)
                ):
                    # The pid was recycled (a reboot): its group is a stranger's, never
                    # to be signalled; ours ended with the agent.
                    self._settle(proc, now)
                    continue
                self.procs[task.id] = proc

    def _reconcile_unrecorded(self, task: Task, now: float) -> None:
        """A task admitted by a supervisor that died before it stored the agent's pid: the
        agent may have started all the same. Adopt it, settle it from its exit file (no
        stale one is left at admission), or queue the task again without spending the
        attempt if it never started."""
        found = runner.find_wrapper(self.home.root, task.id, task.attempts)
        if found is not None:
            self.store.transition(
                task.id,
                State.RUNNING,
                now=now,
                expect={State.STARTING},
                event=EventType.TASK_ADOPTED,
                pid=found.pid,
                pid_started=found.started,
            )
            proc = watched(task, found.pid, child=False)
            self.procs[task.id] = proc
            self._watch(proc)
            return
        status = runner.read_exit_file(self.home.run_dir(task.id))
        if status is None:
            self._interrupted(task.id, now, "supervisor stopped before the agent started", refund=True)
            return
        # The wrapper is gone, so its exit file is whole; pid 0: there is no group left to end.
        proc = watched(task, 0, child=False)
        proc.exited, proc.status = True, status
        self._settle(proc, now)


def describe_status(status: int) -> str:
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
