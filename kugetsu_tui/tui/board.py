"""What the dashboard shows, read from the store a little at a time.

`BoardReader` keeps the dashboard's picture of the queue current without reading the
whole table on every tick: it asks SQLite whether anything was committed since the
last look (`data_version`), and if so reads only the tasks changed since then
(`changed_since`), the counts per state and the head of the queue (a window of the
first few hundred in admission order; the rest are only counted). It never writes.
No Textual import here: this is plain data, testable on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.messages import AgentSlots, SupervisorFacts
from kugetsu_tui.engine.model import BAD_ENDINGS, LIVE_STATES, CapMode, State, Task
from kugetsu_tui.engine.slots import QueueView, explain_queue
from kugetsu_tui.engine.store import Store
from kugetsu_tui.present import cluster_label, constraints

QUEUE_WINDOW = 300
SEARCH_LIMIT = 200  # the filter finds at most this many queued tasks beyond the window
FAILED_WINDOW = 200
# Writers stamp updated_at with their own clock reading, taken before they commit; read
# back this far so that a commit that lands late with an older stamp is not missed.
OVERLAP = 1.0


@dataclass(frozen=True, slots=True)
class SupervisorState:
    """Who runs the agents of this home (this dashboard, another process, or nobody) and
    what that supervisor last said about capacity."""

    here: bool = False
    pid: int | None = None
    cap: int | None = None
    cap_mode: CapMode | None = None
    suggested_cap: int | None = None
    cap_reason: str | None = None
    admission_blocked: str | None = None
    config_error: str | None = None
    cooldowns: Mapping[str, float] = field(default_factory=dict)  # agent -> until
    slots: Mapping[str, AgentSlots] = field(default_factory=dict)  # agents rate limits hold back
    cluster: str | None = None  # agents run on a Ray cluster: the advisor's figures are its
    nodes: tuple[Mapping[str, Any], ...] = ()  # that cluster's nodes, as status --json has them

    @property
    def running(self) -> bool:
        return self.here or self.pid is not None

    def describe(self) -> str:
        if self.here:
            return "supervising here"
        if self.pid is not None:
            return f"attached to pid {self.pid}" if self.pid > 0 else "attached"
        return "no supervisor"

    @classmethod
    def from_facts(cls, facts: SupervisorFacts | None) -> SupervisorState:
        """From what a supervisor in another process published (`present.supervisor_facts`)."""
        if facts is None:
            return cls()
        return cls(
            here=False,
            pid=facts.supervisor_pid or -1,
            cap=facts.cap,
            cap_mode=facts.cap_mode,
            suggested_cap=facts.suggested_cap,
            cap_reason=facts.cap_reason,
            admission_blocked=facts.admission_blocked,
            config_error=facts.config_error,
            cooldowns=dict(facts.cooldowns),
            slots=dict(facts.slots),
            cluster=cluster_label(facts.machine),
        )


@dataclass(slots=True)
class Board:
    """One frame of the dashboard's data."""

    active: list[Task] = field(default_factory=list)
    queued: list[Task] = field(default_factory=list)  # the window, in admission order
    queued_total: int = 0
    failed: list[Task] = field(default_factory=list)  # newest first
    counts: dict[State, int] = field(default_factory=dict)
    cap: int = 1
    supervisor: SupervisorState = field(default_factory=SupervisorState)
    view: QueueView = field(default_factory=lambda: QueueView({}, {}))
    now: float = 0.0
    text_filter: str = ""
    # Bumped whenever that pane's tasks changed, so a pane redraws only its own changes.
    versions: tuple[int, int, int] = (0, 0, 0)  # active, queued, failed

    @property
    def live(self) -> int:
        return sum(self.counts.get(s, 0) for s in LIVE_STATES)

    def get(self, task_id: int) -> Task | None:
        for group in (self.active, self.queued, self.failed):
            for task in group:
                if task.id == task_id:
                    return task
        return None


class BoardReader:
    def __init__(
        self,
        store: Store,
        *,
        queue_window: int = QUEUE_WINDOW,
        failed_window: int = FAILED_WINDOW,
    ) -> None:
        self.store = store
        self._searched: tuple[tuple[str, int], list[Task]] = (("", -1), [])
        self.queue_window = queue_window
        self.failed_window = failed_window
        self.active: dict[int, Task] = {}
        self.failed: dict[int, Task] = {}
        self.queued: list[Task] = []
        self.counts: dict[State, int] = {s: 0 for s in State}
        self._version: int | None = None
        self._high_water: float | None = None
        self.versions = [0, 0, 0]  # active, queued, failed: see Board.versions
        # The queue window's dependencies, read again only when the store changed.
        self.deps: dict[int, list[tuple[int, State]]] = {}

    def poll(self, *, force: bool = False) -> bool:
        """Bring the picture up to date; True if anything in it may have changed.

        `force` after a write through this process's own connection, which
        data_version does not report."""
        version = self.store.data_version()
        if version == self._version and not force:
            return False
        self._version = version
        if self._high_water is None:
            self._load_all()
            self.versions = [v + 1 for v in self.versions]
            self.deps = self.store.dependencies([t.id for t in self.queued])
            return True
        active_moved, queue_moved, failed_moved = self._apply(
            self.store.changed_since(self._high_water - OVERLAP)
        )
        self._trim_failed()
        counts = self.store.counts()
        if queue_moved or counts[State.QUEUED] != self.counts[State.QUEUED]:
            self.queued = self.store.queued(self.queue_window)
            self.versions[1] += 1
        self.versions[0] += active_moved
        self.versions[2] += failed_moved
        self.counts = counts
        self.deps = self.store.dependencies([t.id for t in self.queued])
        return True

    def _apply(self, changed: list[Task]) -> tuple[bool, bool, bool]:
        """Sort changed tasks into the active and failed maps; which panes (active, queued,
        failed) they may have moved."""
        in_window = {t.id for t in self.queued}
        active_moved = queue_moved = failed_moved = False
        for task in changed:
            self._high_water = max(self._high_water or 0.0, task.updated_at)
            active_moved |= task.state.is_live or task.id in self.active
            failed_moved |= task.state in BAD_ENDINGS or task.id in self.failed
            queue_moved |= task.state is State.QUEUED or task.id in in_window
            if task.state.is_live:
                self.active[task.id] = task
            else:
                self.active.pop(task.id, None)
            if task.state in BAD_ENDINGS:
                self.failed[task.id] = task
            else:
                self.failed.pop(task.id, None)
        return active_moved, queue_moved, failed_moved

    def _load_all(self) -> None:
        self.active = {t.id: t for t in self.store.live()}
        self.failed = {t.id: t for t in self.store.tasks(BAD_ENDINGS)}
        self._trim_failed()
        self.queued = self.store.queued(self.queue_window)
        self.counts = self.store.counts()
        stamps = [
            t.updated_at for group in (self.active.values(), self.failed.values(), self.queued) for t in group
        ]
        self._high_water = max(stamps, default=0.0)

    def _trim_failed(self) -> None:
        if len(self.failed) > self.failed_window:
            newest = sorted(self.failed.values(), key=_ended, reverse=True)[: self.failed_window]
            self.failed = {t.id: t for t in newest}

    def board(
        self,
        *,
        cap: int,
        supervisor: SupervisorState,
        now: float,
        text_filter: str = "",
        config: Config | None = None,
    ) -> Board:
        active = sorted(self.active.values(), key=lambda t: t.id)
        failed = sorted(self.failed.values(), key=_ended, reverse=True)
        view = explain_queue(
            self.queued,
            live=len(active),
            cap=cap,
            now=now,
            supervisor=supervisor.running,
            constraints=constraints(
                config or Config(),
                [*active, *self.queued],
                deps=self.deps,
                blocked=supervisor.admission_blocked,
                cooling=supervisor.cooldowns,
                lowered={agent: slots.effective for agent, slots in supervisor.slots.items()},
            ),
        )
        queued = self.queued
        if text_filter:
            active, queued, failed = (
                [t for t in group if matches(t, text_filter)] for group in (active, queued, failed)
            )
            queued = self._beyond_window(queued, text_filter, view)
        return Board(
            active,
            queued,
            self.counts[State.QUEUED],
            failed,
            dict(self.counts),
            cap,
            supervisor,
            view,
            now,
            text_filter,
            (self.versions[0], self.versions[1], self.versions[2]),
        )

    def _beyond_window(self, found: list[Task], text: str, view: QueueView) -> list[Task]:
        """The window's matches, then those the store finds further down the queue (once per
        filter text and queue change), each with its real position."""
        if len(self.queued) >= self.counts[State.QUEUED]:
            return found
        key = (text, self.versions[1])
        if self._searched[0] != key:
            ids = self.store.search_queued(text, SEARCH_LIMIT)
            self._searched = (key, list(self.store.select([State.QUEUED], ids=ids)) if ids else [])
        seen = {t.id for t in found}
        more = [t for t in self._searched[1] if t.id not in seen]
        view.position.update(self.store.positions([t.id for t in more]))
        return found + more


def _ended(task: Task) -> tuple[float, int]:
    return (task.ended_at or task.updated_at, task.id)


def matches(task: Task, text: str) -> bool:
    """The `/` filter: a case-insensitive match on id, state, agent, branch or prompt."""
    needle = text.lower().strip()
    if not needle:
        return True
    if needle.isdigit() and task.id == int(needle):
        return True
    haystack = " ".join((str(task.state), task.agent, task.branch or "", task.prompt)).lower()
    return needle in haystack
