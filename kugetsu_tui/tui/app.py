"""The kugetsu dashboard app: owns the engine connection, the refresh and the samplers.

If no supervisor holds the home's lock, the app runs one itself, as a task in Textual's
own event loop (`Supervisor(..., forever=True, install_signals=False)`), and its actions
wake it directly. If one already runs (`kugetsu run --headless --forever` elsewhere), the
app attaches: it reads the store, and its actions become request rows, exactly as the
CLI's would. If that supervisor goes away, the app takes over.

The keys are in `actions.py`, what they do in `handlers/`; each that changes the queue ends in a
call to `Control` (through `act`), the same calls the CLI makes; the app never signals
a process. Quitting stops only the in-process supervisor loop: the agents keep
running and the next supervisor re-adopts them.

The app reads the store on its own connection, only on the UI thread; psutil sampling
runs in a worker thread and hands readings back with call_from_thread. Clock and
readings are injectable so that snapshot tests see the same screen every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import get_current_worker

from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.messages import ActionResult, Event
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.supervisor import Supervisor, cluster, limits
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import ConfigError, UsageError
from kugetsu_tui.first_run import kugetsu_command
from kugetsu_tui.present import BROWSER_ENV, cluster_label, cluster_nodes, supervisor_facts
from kugetsu_tui.tui import actions
from kugetsu_tui.tui.board import Board, BoardReader, SupervisorState
from kugetsu_tui.tui.dashboard import DashboardScreen
from kugetsu_tui.tui.handlers.view import quit_dashboard
from kugetsu_tui.tui.readings import MachineReading, MachineSampler, sample_machine

REFRESH_EVERY = 0.5  # seconds between looks at the store
REBUILD_EVERY = 2.0  # seconds a board is shown again with nothing changed in the store
SAMPLE_EVERY = 1.0  # seconds between readings of the machine
LOOK_AROUND_EVERY = 2.0  # seconds between checks of the lock and of config.toml
SOON = 0.1  # after the supervisor reports events, refresh this soon


class KugetsuApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "kugetsu"
    BINDINGS = [
        Binding("ctrl+q", "quit", "quit", show=False, priority=True),
    ]

    def __init__(
        self,
        home: Home,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        machine_sampler: MachineSampler = sample_machine,
        probe: Callable[[], SupervisorState] | None = None,
        supervise: bool = True,
        refresh_every: float = REFRESH_EVERY,
        sample_every: float | None = SAMPLE_EVERY,
    ) -> None:
        no_color = os.environ.get("NO_COLOR")
        super().__init__()
        if no_color is not None:
            os.environ["NO_COLOR"] = no_color  # Textual takes it out; the agents keep it
        self.home = home
        self.config = config
        self.config_path = config.path or home.config_path
        self.clock = clock
        self.machine_sampler = machine_sampler
        self.probe = probe  # fixed supervisor facts for tests; then never supervise here
        self.supervise = supervise and probe is None
        self.refresh_every = refresh_every
        self.sample_every = sample_every
        self.store = Store(home.db_path)
        self.control = Control(home, store=self.store)
        self.reader = BoardReader(self.store)
        self.board = Board()
        self._board_config: Config | None = None  # the config the board was explained with
        self.dashboard = DashboardScreen(home.log_path)
        self.supervisor: Supervisor | None = None
        self.machine: MachineReading | None = None
        self.elsewhere = SupervisorState()  # a supervisor in another process, if any
        self._supervisor_task: asyncio.Task[None] | None = None
        self._generation = 0
        self._dirty = False
        self._soon = False
        self._next_look = 0.0
        self._config_mtime = self._mtime()
        self._pending: dict[int, str] = {}
        self._stop_sampling = threading.Event()
        self.last_repo = ""  # the new-task form starts from the repo it was last given
        self.quitting = False
        self._supervisor_broke = False
        self.config_broken: str | None = None  # config.toml could not be read: on defaults
        self.find_agent: Callable[[str], str | None] = shutil.which  # the empty state's look at PATH
        self.kugetsu_command = kugetsu_command()  # how the person can call kugetsu from here

    def get_default_screen(self) -> Screen[None]:
        return self.dashboard

    # --- lifecycle --------------------------------------------------------------------

    def on_mount(self) -> None:
        self._look_around(force=True)
        self.refresh_board()
        self._take_reading(self.machine_sampler())
        self.call_after_refresh(self.dashboard.focus_first)
        self.set_interval(self.refresh_every, self.refresh_board)
        self.set_interval(1.0, self.dashboard.refresh_active)
        if self.sample_every is not None:
            self.sample_forever()

    async def on_unmount(self) -> None:
        self.quitting = True
        self._stop_sampling.set()
        await self._stop_supervisor()
        self.store.close()

    def _start_supervisor(self) -> None:
        supervisor = Supervisor(
            self.home, self.config, forever=True, install_signals=False, on_events=self._on_supervisor_events
        )
        if self.config_broken:
            supervisor.loaded_signature = None  # its first look at the file reports it broken
        self.supervisor = supervisor
        self.control.wake = supervisor.wake
        self._supervisor_task = asyncio.create_task(self._supervise(supervisor))

    async def _supervise(self, supervisor: Supervisor) -> None:
        try:
            await supervisor.run()
        except UsageError as err:  # another supervisor took the lock first: attach to it
            self.notify(str(err), title="attached", severity="warning")
        except Exception as err:  # keep the dashboard up; say what happened
            self._supervisor_broke = True
            self.notify(
                f"{type(err).__name__}: {err}", title="supervisor stopped", severity="error", timeout=30
            )
        finally:
            if self.supervisor is supervisor:
                self.supervisor = None
                self.control.wake = None
            self._dirty = True
            self._next_look = 0.0

    async def _stop_supervisor(self) -> None:
        task, supervisor = self._supervisor_task, self.supervisor
        if task is None or supervisor is None:
            return
        supervisor.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout=15)
        self._supervisor_task = None

    def _on_supervisor_events(self, events: list[Event]) -> None:
        if not self._soon:
            self._soon = True
            self.set_timer(SOON, self._refresh_soon)

    def _refresh_soon(self) -> None:
        self._soon = False
        self.refresh_board()

    # --- refreshing -------------------------------------------------------------------

    def supervisor_state(self) -> SupervisorState:
        supervisor = self.supervisor
        if supervisor is None:
            return self.elsewhere
        suggestion = supervisor.suggestion
        return SupervisorState(
            here=True,
            pid=os.getpid(),
            cap=supervisor.cap,
            cap_mode=supervisor.config.cap_mode,
            suggested_cap=suggestion.cap if suggestion else None,
            cap_reason=suggestion.reason if suggestion else None,
            admission_blocked=supervisor.admission_blocked,
            config_error=supervisor.config_error,
            cooldowns={a: until for a, (until, _) in supervisor.cooldowns.items() if until},
            slots=limits.published(supervisor),
            cluster=cluster_label(cluster.machine_facts(supervisor)),
            nodes=tuple(cluster.node_facts(supervisor) or ()),
        )

    def current_cap(self) -> int:
        cap = self.supervisor_state().cap
        return cap if cap is not None else self.config.cap

    def on_dashboard_screen_filter_changed(self, event: DashboardScreen.FilterChanged) -> None:
        self.refresh_board()

    def refresh_board(self) -> None:
        """Read what changed in the store and show it; the only path from store to screen."""
        if self.quitting:
            return
        self._look_around()
        if (
            self.supervise
            and self.supervisor is None
            and not self.elsewhere.running
            and not self._supervisor_broke
        ):
            self._start_supervisor()  # none runs (any more): this dashboard supervises
        changed = self.reader.poll(force=self._dirty)
        if changed:
            self._generation += 1
        self._dirty = False
        now, state = self.clock(), self.supervisor_state()
        cap = state.cap if state.cap is not None else self.config.cap  # (current_cap, read once)
        board = self.board
        # Explaining the queue's window is most of a refresh: done again when something
        # changed, else every REBUILD_EVERY seconds (for the countdowns in wait reasons).
        if (
            changed
            or now - board.now >= REBUILD_EVERY
            or state != board.supervisor
            or cap != board.cap
            or self.dashboard.text_filter != board.text_filter
            or self.config is not self._board_config
        ):
            self._board_config = self.config
            self.board = self.reader.board(
                cap=cap, supervisor=state, now=now, text_filter=self.dashboard.text_filter, config=self.config
            )
            self.dashboard.show(self.board, self._generation)
        else:
            self.dashboard.log_pane.poll()  # the one thing that moves without the store
        self._check_requests()

    def _look_around(self, *, force: bool = False) -> None:
        """Now and then: who holds the lock, and did config.toml change."""
        now = time.monotonic()
        if not force and now < self._next_look:
            return
        self._next_look = now + LOOK_AROUND_EVERY
        if self.probe is not None:
            self.elsewhere = self.probe()
        elif self.supervisor is None:
            now = time.time()
            self.elsewhere = replace(
                SupervisorState.from_facts(supervisor_facts(self.store, self.home, now)),
                nodes=tuple(cluster_nodes(self.store, now) or ()),
            )
        mtime = self._mtime()
        if mtime != self._config_mtime:
            self._config_mtime = mtime
            try:
                self.config = load_config(self.config_path)
            except ConfigError as err:
                self.notify(str(err), title="config.toml not reloaded", severity="error", timeout=15)

    def _mtime(self) -> float | None:
        try:
            return self.config_path.stat().st_mtime
        except OSError:
            return None

    def _check_requests(self) -> None:
        """Say so when a supervisor refused one of our requests."""
        for request_id, what in list(self._pending.items()):
            result = self.store.request_result(request_id)
            if result is None:
                continue
            del self._pending[request_id]
            if not (answer := ActionResult.decode(result)).ok:
                self.notify(answer.message, title=what, severity="warning")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification, as plain text made printable: messages carry prompts, paths
        and reasons from outside, which must neither reach the terminal raw nor be markup."""
        message, title = printable(message, lines=True), printable(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # --- sampling (worker thread) -------------------------------------------------------

    @work(thread=True, exclusive=True, group="sampling", exit_on_error=False)
    def sample_forever(self) -> None:
        worker = get_current_worker()
        assert self.sample_every is not None
        while not self._stop_sampling.wait(self.sample_every) and not worker.is_cancelled:
            reading = self.machine_sampler()
            try:
                self.call_from_thread(self._take_reading, reading)
            except RuntimeError:
                return  # the app is closing

    def _take_reading(self, reading: MachineReading) -> None:
        self.machine = reading
        self.dashboard.show_readings(reading)

    # --- the keys: the table in actions.py; each ends in act() -------------------------

    def act(self, what: str, call: Callable[[], Sequence[ActionResult] | ActionResult]) -> bool:
        """Run one Control call; report its outcome or the user mistake it raised."""
        try:
            result = call()
        except UsageError as err:
            self.notify(str(err), title=what, severity="warning")
            return False
        outcomes = [result] if isinstance(result, ActionResult) else list(result)
        for outcome in outcomes:
            if outcome.request_id is not None:
                self._pending[outcome.request_id] = what
            prefix = f"task {outcome.task_id}: " if outcome.task_id is not None else ""
            self.notify(prefix + outcome.message, timeout=3)
        self._dirty = True
        self.refresh_board()
        return True

    def reread_config(self) -> None:
        """Load config.toml now (this app just wrote it), so the next look around does not."""
        with contextlib.suppress(ConfigError):
            self.config = load_config(self.config_path)
            self._config_mtime = self._mtime()

    async def action_quit(self) -> None:
        await quit_dashboard(self)  # also for ctrl+q and Textual's own ways to quit

    async def shut_down(self) -> None:
        self.quitting = True
        self._stop_sampling.set()
        await self._stop_supervisor()
        self.exit(0)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        ours = list(actions.palette_commands(self))
        titles = {command.title for command in ours}
        # Textual's own Quit and Keys give way to ours (ours asks first; ours shows our keys).
        yield from (c for c in super().get_system_commands(screen) if c.title not in titles)
        yield from ours


def run_dashboard(home: Home, config: Config, *, config_broken: str | None = None) -> int:
    """Open the dashboard on `home` (the CLI's entry). Needs a terminal."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()) and BROWSER_ENV not in os.environ:
        raise UsageError("the dashboard needs a terminal; use --headless to run without one")
    app = KugetsuApp(home, config)
    app.config_broken = config_broken
    if BROWSER_ENV in os.environ:  # the driver is chosen: the agents must not inherit it
        for name in ("TEXTUAL_DRIVER", "TEXTUAL_FPS", "TEXTUAL_COLOR_SYSTEM"):
            os.environ.pop(name, None)
    app.run()
    return app.return_code or 0


__all__ = ["KugetsuApp", "run_dashboard"]
