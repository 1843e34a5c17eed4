"""The Supervisor: the one async loop that runs agents, and the state its jobs share.

One supervisor per KUGETSU_HOME (it holds the home's flock). It is the only code that
starts, signals or settles agent processes; everyone else leaves request rows in the store
and pokes it with SIGUSR1. This module owns the order of a tick and when the loop wakes;
each step is a job of its own module (requests, settle, deadlines, start, advisor,
recovery), and every process is reached through the executor.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kugetsu_tui.engine.agents import Activity, Cooldown, Slots
from kugetsu_tui.engine.budget import Spent
from kugetsu_tui.engine.capacity import Machine, PressureRelief, Smoother, Suggestion
from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.executor import Executor, Leftovers
from kugetsu_tui.engine.executor.local import LocalExecutor
from kugetsu_tui.engine.executor.ray_cluster import ClusterReading
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.hooks import Hooks
from kugetsu_tui.engine.messages import ActionResult, Ending, Event
from kugetsu_tui.engine.model import EventType, iso
from kugetsu_tui.engine.readings import TreeMeter
from kugetsu_tui.engine.store import Store, disk_full
from kugetsu_tui.engine.supervisor import advisor, deadlines, recovery, reload, requests, settle, start
from kugetsu_tui.engine.supervisor.attempt import Proc, end

Clock = Callable[[], float]
IDLE_POLL = 0.5  # how often an idle loop looks for work added by other processes
SETTLE_POLL = 0.05  # while an ended agent's stray children are still being stopped
# How long a spawned attempt's RUNNING mark may wait for a tick that has other work: with
# fast agents their exits wake the loop first, and the mark shares that tick's commit.
MARK_DELAY = 0.05

AGENT_ENV_WITHHELD = frozenset({"KUGETSU_HOME"})

BAD_OUTCOMES = frozenset({EventType.TASK_ERROR, EventType.TASK_CANCELLED, EventType.TASK_EXPIRED})
GOOD_OUTCOMES = frozenset({EventType.TASK_COMPLETED})


@dataclass(slots=True)
class RunSummary:
    outcomes: dict[int, EventType] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if any(o in BAD_OUTCOMES for o in self.outcomes.values()) else 0


def executor_for(home: Home, config: Config) -> Executor:
    """The executor `[executor] kind` names: this machine, or a Ray cluster."""
    if config.executor_kind == "ray":
        from kugetsu_tui.engine.executor.ray import RayExecutor

        return RayExecutor.for_config(home, config)
    return LocalExecutor(home)


class Supervisor:
    # Long by design: every piece of state the jobs (requests, start, settle, deadlines,
    # advisor, recovery) share is declared here, once, with what it means.
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
        executor: Executor | None = None,
    ) -> None:
        self.home = home
        self.config = config
        self.cap = config.cap
        self.forever = forever
        self.clock = clock
        self.install_signals = install_signals
        self.on_events = on_events
        self.stop_agents = stop_agents  # on stop, end the agents (requeued) instead of leaving them
        self.executor: Executor = executor or executor_for(home, config)
        self.procs: dict[int, Proc] = {}
        self.starting: set[int] = set()  # admitted, worktree being made
        self.spawning: set[int] = set()  # of those starting: its process being made (start.spawn)
        self._spawner: ThreadPoolExecutor | None = None
        self.cancel_on_start: set[int] = set()
        self.setups: dict[int, int] = {}  # task -> process group of its running worktree setup
        self.leftovers: list[Leftovers] = []  # settled attempts whose strays are yet to be ended
        self.sweeping = False
        self.next_sweep = 0.0  # monotonic time before which no new sweep starts
        # While writes fail for want of space: why (admission waits), and the writes that
        # must not be lost, kept in order to be made first thing once there is room.
        self.disk_full: str | None = None
        self.deferred: list[Callable[[], object]] = []
        self.running_marks: list[Callable[[], object]] = []  # spawned attempts' RUNNING, to write
        self.summary = RunSummary()
        self.stopping = False
        self.event_loop: asyncio.AbstractEventLoop | None = None
        # What agents inherit: not where the home is (every task's prompt and log, the
        # hot-reloaded config). They are told their task and attempt, and nothing more.
        self.env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_WITHHELD}
        self.data_version = -1  # the store's, when requests were last looked for
        self.next_expiry_check = 0.0
        self.background: set[asyncio.Task[None]] = set()
        self.cooldowns: dict[str, tuple[float, int]] = {}  # agent -> (until, rate limits in a row)
        self.rate_episodes: dict[str, Cooldown] = {}  # agent -> its last rate-limit episode
        self.slots: dict[str, Slots] = {}  # agent -> its max_live as rate limits lowered it
        self.fatal_runs: dict[str, int] = {}  # agent -> fatal failures in a row
        self.suspended: dict[str, str] = {}  # agent -> why it is suspended
        self.activity: dict[int, Activity] = {}  # task -> when its attempt last showed life
        # What the advisor last measured and concluded (shown by status and the dashboard).
        self.meter = TreeMeter()
        self.smoother = Smoother()
        self.machine: Machine | None = None
        self.suggestion: Suggestion | None = None
        self.memory: tuple[float, int] | None = None  # (monotonic time, bytes available)
        self.admission_blocked: str | None = None
        self.spent: tuple[int, Spent] | None = None  # (store.spend_reports, the budget's sums) when read
        self.cluster: ClusterReading | None = None  # the Ray cluster's last reading, if agents run there
        self.cluster_down: str | None = None  # why the cluster cannot be reached (admission waits)
        self.pressure = PressureRelief()  # memory_pressure = "pause_newest"
        self.config_error: str | None = None
        self.loaded_signature = reload.config_signature(self)
        self.hooks = Hooks(config.hooks, spawn=self.in_background, report=self._hook_failed, clock=clock)
        self._wake = asyncio.Event()
        self._wake_soon: asyncio.TimerHandle | None = None
        self._store: Store | None = None
        self._last_event = 0
        self._emitted_version = -1  # the store's data_version when events were last read
        self._services: list[asyncio.Task[None]] = []

    def spawner(self) -> ThreadPoolExecutor:
        """The threads agents are spawned from (one per slot, up to four)."""
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(min(max(self.cap, 1), 4), thread_name_prefix="kugetsu-spawn")
        return self._spawner

    @property
    def store(self) -> Store:
        assert self._store is not None, "the supervisor is not running"
        return self._store

    # --- lifecycle --------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def wake_soon(self) -> None:
        """A tick within MARK_DELAY: for writes that can wait to share a commit."""
        if self._wake_soon is None and self.event_loop is not None:
            self._wake_soon = self.event_loop.call_later(MARK_DELAY, self._wake.set)

    def stop(self) -> None:
        """Stop admitting and return from run(); agents keep running, to be re-adopted."""
        self.stopping = True
        self._wake.set()

    async def run(self) -> int:
        """Supervise until the queue is drained (or stop(), or forever). Returns the exit code."""
        lock = self.home.lock_supervisor()
        self.event_loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if self.install_signals else ()
        try:
            self._open(self.event_loop, signals)
            await self._supervise()
            await self._finish()
        finally:
            await self._close(self.event_loop, signals)
            lock.release()
        return self.summary.exit_code

    def _open(self, loop: asyncio.AbstractEventLoop, signals: tuple[signal.Signals, ...]) -> None:
        self._store = Store(self.home.db_path)
        self._store.keep_written = True
        self._last_event = self.store.last_event_id()
        self.store.record(
            self.clock(), EventType.SUPERVISOR_STARTED, None, {"pid": os.getpid(), "cap": self.cap}
        )
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGUSR1, self.wake)
        recovery.reconcile(self)
        advisor.publish(self, self.clock())
        self._services = [
            loop.create_task(advisor.sample_forever(self)),
            loop.create_task(reload.watch_config(self)),
        ]

    async def _supervise(self) -> None:
        while True:
            self.tick()
            if self.stopping and self.stop_agents and (self.procs or self.spawning):
                for proc in self.procs.values():
                    if proc.ending is None:
                        end(self, proc, Ending.STOP, self.clock())
            elif self.stopping or (not self.forever and self.drained()):
                break
            await self.sleep(self.next_wakeup())

    async def _finish(self) -> None:
        self.hooks.flush_all()
        # Let worktrees in the making (or being removed), hooks and the ending of what
        # settled attempts left behind finish: nothing half-done.
        start.stop_setups(self)
        settle.sweep_leftovers(self, now=True)
        while self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
            settle.sweep_leftovers(self, now=True)
        # What cannot be written now is taken over by the next supervisor's reconcile.
        with self.unless_disk_full():
            self.flush_deferred()
            with self.store.batch():
                self.write_running_marks()
            self.running_marks.clear()
            self.store.record(
                self.clock(),
                EventType.SUPERVISOR_STOPPED,
                None,
                {"pid": os.getpid(), "live_left_running": len(self.procs)},
            )
        self.emit_events()

    async def _close(self, loop: asyncio.AbstractEventLoop, signals: tuple[signal.Signals, ...]) -> None:
        for service in self._services:
            service.cancel()
        await asyncio.gather(*self._services, return_exceptions=True)
        for proc in self.procs.values():
            self.executor.unwatch(proc.pid)
        for sig in (*signals, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        if self._spawner is not None:
            self._spawner.shutdown()
            self._spawner = None
        if self._store is not None:
            self._store.close()

    async def sleep(self, timeout: float) -> None:
        """Until a wake-up (a child exit, a poke, a request) or `timeout` seconds pass.

        A timer that sets the wake-up event, not asyncio.wait_for: that wraps the wait
        in a new task on every tick, a cost paid once per finished agent."""
        assert self.event_loop is not None
        if not self._wake.is_set():
            timer = self.event_loop.call_later(timeout, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
        self._wake.clear()

    def drained(self) -> bool:
        """Nothing runs and nothing queued can start without a person (a spent budget too)."""
        return (
            not self.procs
            and not self.starting
            and not self.deferred
            and not self.running_marks
            and (not self.store.has_runnable(self.suspended) or start.budget_block(self) is not None)
        )

    def next_wakeup(self) -> float:
        """Seconds until something is due: a deadline, a SIGKILL, a cooldown's end, a backoff."""
        now = self.clock()
        times = [now + IDLE_POLL]
        for proc in self.procs.values():
            if proc.exited:
                times.append(now + (IDLE_POLL if self.disk_full else SETTLE_POLL))
            if proc.kill_at is not None:
                times.append(proc.kill_at)
            if proc.deadline is not None and proc.ending is None:
                times.append(proc.deadline)
        times.extend(until for until, _ in self.cooldowns.values() if until > now)
        if self.leftovers and not self.sweeping:
            times.append(now + max(self.next_sweep - time.monotonic(), 0.0))
        ready_at = self.store.next_ready_at(now)
        if ready_at is not None:
            times.append(ready_at)
        return max(min(times) - now, 0.0)

    def in_background(self, work: Coroutine[None, None, None]) -> None:
        """Run work beside the loop; run() waits for it before it returns."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # --- the tick ---------------------------------------------------------------------

    def tick(self) -> None:
        if self._wake_soon is not None:
            self._wake_soon.cancel()
            self._wake_soon = None
        now = self.clock()
        with self.unless_disk_full():
            if self.disk_full is not None:
                self.space_is_back(now)  # raises while the disk is still full
            self.flush_deferred()
            requests.carry_out_requests(self, now)
            self._settle_and_admit(now)
        settle.sweep_leftovers(self)
        self.emit_events()

    def _settle_and_admit(self, now: float) -> None:
        # The running marks, settling, expiry and admission share one transaction: one
        # commit a tick rather than one per change. Admission stays one atomic step
        # inside it, and nothing is spawned before it is committed.
        watched = dict(self.procs)
        try:
            with self.store.batch():
                self.write_running_marks()
                settle.settle_exited(self, now)
                deadlines.enforce_deadlines(self, now)
                settle.end_cooldowns(self, now)
                for task in self.store.fail_dependants(now):
                    settle.clean_worktree(self, task)
                admitted = [] if self.stopping or self.disk_full else start.admit(self, now)
            self.running_marks.clear()
        except Exception:
            # Rolled back (a full disk): attempts settled here are watched again, to be
            # settled once the store takes it. Nothing is forgotten.
            for task_id, proc in watched.items():
                self.procs.setdefault(task_id, proc)
            raise
        start.start(self, admitted)

    # --- a full disk ---------------------------------------------------------------------

    @contextmanager
    def unless_disk_full(self) -> Iterator[None]:
        """Around work whose writes may fail for want of space: the supervisor goes on,
        stops admitting, and says why once it can write again."""
        try:
            yield
        except Exception as err:
            if not disk_full(err):
                raise
            self.out_of_space(err)

    def out_of_space(self, err: BaseException) -> None:
        if self.disk_full is None:
            self.disk_full = f"out of disk space ({err}) at {iso(self.clock())}"
            self.admission_blocked = f"{self.disk_full}: nothing is admitted until there is room"
            if self.on_events is not None:  # it cannot be stored: shown as it happens
                data = {"error": f"{self.disk_full}; admission stopped until there is room"}
                self.on_events([Event(0, self.clock(), EventType.SUPERVISOR_WARNING, None, data)])

    def space_is_back(self, now: float) -> None:
        """Try a write; if it lands the disk has room again and admission resumes."""
        note = f"{self.disk_full}; there is room again and admission resumed"
        self.store.record(now, EventType.SUPERVISOR_WARNING, None, {"error": note})
        self.disk_full = None
        self.admission_blocked = None
        advisor.publish(self, now)

    def write_or_defer(self, write: Callable[[], object]) -> None:
        """A store write that must not be lost: made now or, while the disk is full, kept
        to be made (in order) first thing in a tick once there is room."""
        if not self.deferred:
            try:
                write()
                return
            except Exception as err:
                if not disk_full(err):
                    raise
                self.out_of_space(err)
        self.deferred.append(write)

    def write_running_marks(self) -> None:
        """Mark the attempts spawned since the last tick running, before any of them can be
        settled (their events come in that order). Inside a batch: the caller forgets them
        once it has committed."""
        for mark in self.running_marks:
            mark()

    def flush_deferred(self) -> None:
        while self.deferred:
            self.deferred[0]()
            self.deferred.pop(0)

    def emit_events(self) -> None:
        """Hand the events written since the last call to the summary, hooks and on_events."""
        events = self.store.take_written()
        if self.data_version != self._emitted_version or not _follows(events, self._last_event):
            # Another process wrote events too (the store changed under us, or a gap in
            # the ids): read them all back in order, ours among them.
            self._emitted_version = self.data_version
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

    def _hook_failed(self, data: dict[str, Any]) -> None:
        self.write_or_defer(partial(self.store.record, self.clock(), EventType.HOOK_FAILED, None, data))

    # --- actions, for code that holds the supervisor itself ------------------------------

    def set_cap(self, cap: int, now: float, reason: str | None = None) -> ActionResult:
        return requests.set_cap(self, cap, now, reason)

    def cancel(self, task_id: int, now: float) -> ActionResult:
        return requests.cancel(self, task_id, now)

    def pause(self, task_id: int, now: float, reason: str | None = None) -> ActionResult:
        return requests.pause(self, task_id, now, reason)

    def resume(self, task_id: int, now: float) -> ActionResult:
        return requests.resume(self, task_id, now)

    def reload_config(self) -> None:
        reload.reload_config(self)


def _follows(events: list[Event], last: int) -> bool:
    """These events' ids run on from `last` without a gap."""
    return not events or (events[0].id == last + 1 and events[-1].id - events[0].id == len(events) - 1)
