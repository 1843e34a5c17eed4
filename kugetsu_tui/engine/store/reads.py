"""The store's read side: every query that changes nothing (status, the dashboard, the
supervisor's timers). Plain reads in autocommit, or one snapshot inside `reading()`."""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Collection, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import slots
from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import State, Task
from kugetsu_tui.engine.store.schema import (
    _DEPS_UNMET,
    _LIVE,
    _LIVE_SQL,
    _TASK_SELECT,
    QUEUE_ORDER,
    _task_from_row,
)


class Reads:
    """The read queries of Store (mixed into it)."""

    db: sqlite3.Connection
    path: Path

    def data_version(self) -> int:
        """Changes whenever another connection commits: a free way to notice new work."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def get(self, task_id: int) -> Task | None:
        row = self.db.execute(_TASK_SELECT + " WHERE id = ?", (task_id,)).fetchone()
        return _task_from_row(row) if row else None

    def tasks(self, states: Collection[State] | None = None, limit: int | None = None) -> list[Task]:
        """Tasks in queue order within each state group; all of them when states is None."""
        sql = _TASK_SELECT
        params: list[Any] = []
        if states is not None:
            sql += " WHERE state IN (" + ",".join("?" * len(states)) + ")"
            params.extend(str(s) for s in states)
        sql += " " + QUEUE_ORDER
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_task_from_row(r) for r in self.db.execute(sql, params)]

    def queued(self, limit: int | None = None) -> list[Task]:
        """Queued tasks in admission order."""
        return self.tasks([State.QUEUED], limit)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same moment (a WAL snapshot), so
        counts and the rows listed after them agree without reading everything at once."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def select(
        self,
        states: Collection[State],
        *,
        ids: Collection[int] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> Iterator[Task]:
        """Tasks in these states (and among these ids), read lazily as they are consumed:
        in admission order, or newest first."""
        if newest_first:
            # One indexed walk per state, merged: no sort over a long history.
            walks = [self._select([s], ids, "ORDER BY id DESC", limit) for s in states]
            try:
                merged = heapq.merge(*walks, key=lambda t: -t.id)
                for n, task in enumerate(merged):
                    if limit is not None and n >= limit:
                        return
                    yield task
            finally:
                for walk in walks:  # a statement left open would keep its read transaction
                    walk.close()
        else:
            yield from self._select(states, ids, QUEUE_ORDER, limit)

    def _select(
        self, states: Collection[State], ids: Collection[int] | None, order: str, limit: int | None
    ) -> Generator[Task, None, None]:
        if not states or limit == 0:
            return
        # With ids, look them up by key ("+state" keeps SQLite from walking a state's index
        # instead, which would read a long queue to avoid sorting a few rows).
        column = "state" if ids is None else "+state"
        sql = _TASK_SELECT + f" WHERE {column} IN (" + ",".join("?" * len(states)) + ")"
        params: list[Any] = [str(s) for s in states]
        if ids is not None:
            sql += " AND id IN (" + ",".join("?" * len(ids)) + ")"
            params.extend(ids)
        sql += " " + order
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        for row in self.db.execute(sql, params):
            yield _task_from_row(row)

    def known(self, ids: Collection[int]) -> set[int]:
        """Those of `ids` that name a task."""
        sql = "SELECT id FROM tasks WHERE id IN (" + ",".join("?" * len(ids)) + ")"
        return {int(i) for (i,) in self.db.execute(sql, list(ids))}

    def search_queued(self, text: str, limit: int) -> list[int]:
        """Ids of queued tasks whose id is `text`, or whose agent, branch or prompt holds it
        (ASCII letters in any case), in admission order, at most `limit`: the dashboard's
        filter, for a queue longer than the part of it the dashboard holds."""
        needle = text.strip().lower()
        if not needle:
            return []
        task_id = int(needle) if needle.isdigit() and len(needle) < 19 else -1
        rows = self.db.execute(
            "SELECT id FROM tasks WHERE state = 'queued' AND (id = ? OR instr(lower("
            "agent || ' ' || coalesce(branch, '') || ' ' || CAST(prompt AS TEXT)), ?) > 0) "
            f"{QUEUE_ORDER} LIMIT ?",
            (task_id, needle, limit),
        )
        return [int(row[0]) for row in rows]

    def positions(self, ids: Collection[int]) -> dict[int, int]:
        """The 1-based queue position of each of these tasks that is queued and not held:
        one more than the runnable-or-waiting tasks ahead of it in admission order."""
        sql = (
            "SELECT t.id, 1"
            " + (SELECT count(*) FROM tasks a WHERE a.state = 'queued' AND a.held = 0"
            " AND a.priority > t.priority)"
            " + (SELECT count(*) FROM tasks a WHERE a.state = 'queued' AND a.held = 0"
            " AND a.priority = t.priority AND a.id < t.id)"
            " FROM tasks t WHERE t.state = 'queued' AND t.held = 0 AND t.id IN ("
            + ",".join("?" * len(ids))
            + ")"
        )
        return {int(i): int(p) for i, p in self.db.execute(sql, list(ids))} if ids else {}

    def runnable(
        self, now: float, limit: int, *, skip_agents: Collection[str] = (), skip_repos: Collection[str] = ()
    ) -> list[Task]:
        """The first `limit` queued tasks that admission could take now, in its order: not
        held, backoff passed, dependencies met, agent not in `skip_agents`, repo not in
        `skip_repos`. Reads no further than it needs."""
        sql = (
            _TASK_SELECT + " WHERE state = 'queued' AND held = 0"
            f" AND (not_before IS NULL OR not_before <= ?) AND NOT {_DEPS_UNMET}"
        )
        params: list[Any] = [now]
        if skip_agents:
            sql += " AND agent NOT IN (" + ",".join("?" * len(skip_agents)) + ")"
            params.extend(skip_agents)
        if skip_repos:
            sql += " AND (repo IS NULL OR repo NOT IN (" + ",".join("?" * len(skip_repos)) + "))"
            params.extend(skip_repos)
        params.append(limit)
        return [_task_from_row(r) for r in self.db.execute(sql + " " + QUEUE_ORDER + " LIMIT ?", params)]

    def live(self) -> list[Task]:
        return [
            _task_from_row(r)
            for r in self.db.execute(_TASK_SELECT + f" WHERE {_LIVE_SQL} ORDER BY id", _LIVE)
        ]

    def succeeded(self, limit: int, offset: int = 0) -> list[Task]:
        """Succeeded tasks, the latest to end first: one page of the dashboard's Done view."""
        rows = self.db.execute(
            _TASK_SELECT + " WHERE state = 'succeeded' ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_task_from_row(r) for r in rows]

    def changed_since(self, updated_at: float) -> list[Task]:
        rows = self.db.execute(
            _TASK_SELECT + " INDEXED BY tasks_by_update WHERE updated_at > ?", (updated_at,)
        )
        return sorted((_task_from_row(r) for r in rows), key=lambda t: t.id)

    def counts(self, ids: Collection[int] | None = None) -> dict[State, int]:
        """Tasks in each state (among `ids` when given)."""
        sql, params = "SELECT state, count(*) FROM tasks", list(ids or ())
        if ids is not None:
            sql += " WHERE id IN (" + ",".join("?" * len(params)) + ")"
        found = dict(self.db.execute(sql + " GROUP BY state", params))
        return {s: int(found.get(str(s), 0)) for s in State}

    def live_count(self) -> int:
        return int(self.db.execute(f"SELECT count(*) FROM tasks WHERE {_LIVE_SQL}", _LIVE).fetchone()[0])

    def runnable_count(self) -> int:
        """Queued tasks that are not held: work a headless run still waits for."""
        return int(
            self.db.execute("SELECT count(*) FROM tasks WHERE state = 'queued' AND held = 0").fetchone()[0]
        )

    def waiting_on_a_person(self, suspended: Collection[str] = ()) -> dict[int, str]:
        """Queued tasks that cannot run until a person acts, with why (slots decides)."""
        return slots.waiting_on_a_person(*self._queue_and_deps(), suspended)

    def has_runnable(self, suspended: Collection[str] = ()) -> bool:
        """Whether a queued task can still run without a person: what a run waits for."""
        marks = ",".join("?" * len(suspended))
        free = self.db.execute(
            "SELECT 1 FROM tasks t WHERE state = 'queued' AND held = 0"
            f" AND agent NOT IN ({marks}) AND NOT EXISTS (SELECT 1 FROM deps d WHERE d.task_id = t.id)"
            " LIMIT 1",
            tuple(suspended),
        ).fetchone()
        if free is not None:  # the common case, without reading the queue
            return True
        queued, deps = self._queue_and_deps()
        return len(slots.waiting_on_a_person(queued, deps, suspended)) < len(queued)

    def _queue_and_deps(self) -> tuple[list[Task], dict[int, list[tuple[int, State]]]]:
        deps: dict[int, list[tuple[int, State]]] = {}
        for task_id, after_id, state in self.db.execute(
            "SELECT d.task_id, d.after_id, p.state FROM tasks t CROSS JOIN deps d ON d.task_id = t.id"
            " CROSS JOIN tasks p ON p.id = d.after_id WHERE t.state = 'queued' ORDER BY d.task_id, d.after_id"
        ):
            deps.setdefault(task_id, []).append((after_id, State(state)))
        return self.queued(), deps

    def next_ready_at(self, now: float) -> float | None:
        """When the next task in backoff becomes runnable, if any."""
        row = self.db.execute(
            "SELECT min(not_before) FROM tasks INDEXED BY tasks_backoff"
            " WHERE state = 'queued' AND held = 0 AND not_before > ?",
            (now,),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def expired(self, queued_before: float) -> list[Task]:
        """Queued tasks (not held) that have waited since before `queued_before`."""
        return [
            _task_from_row(r)
            for r in self.db.execute(
                _TASK_SELECT + " INDEXED BY tasks_waiting_since"
                " WHERE state = 'queued' AND held = 0 AND queued_at < ? ORDER BY id",
                (queued_before,),
            )
        ]

    def events(self, since: int = 0, task_id: int | None = None, limit: int | None = None) -> list[Event]:
        sql = "SELECT id, ts, type, task_id, data FROM events WHERE id > ?"
        params: list[Any] = [since]
        if task_id is not None:
            sql += " AND task_id = ?"
            params.append(task_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Event(i, ts, t, tid, json.loads(d)) for i, ts, t, tid, d in self.db.execute(sql, params)]

    def last_event_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def children(self, task_ids: Collection[int] | None = None) -> dict[int, list[int]]:
        """Each task's children (tasks added from inside its run), in id order."""
        sql = "SELECT parent, id FROM tasks WHERE parent IS NOT NULL"
        params: list[Any] = []
        if task_ids is not None:
            sql += " AND parent IN (" + ",".join("?" * len(task_ids)) + ")"
            params.extend(task_ids)
        found: dict[int, list[int]] = {}
        for parent, child in self.db.execute(sql + " ORDER BY parent, id", params):
            found.setdefault(parent, []).append(child)
        return found

    def dependencies(self, task_ids: Collection[int] | None = None) -> dict[int, list[tuple[int, State]]]:
        """Each task's dependencies with their current states."""
        sql = "SELECT d.task_id, d.after_id, p.state FROM deps d JOIN tasks p ON p.id = d.after_id"
        params: list[Any] = []
        if task_ids is not None:
            sql += " WHERE d.task_id IN (" + ",".join("?" * len(task_ids)) + ")"
            params.extend(task_ids)
        found: dict[int, list[tuple[int, State]]] = {}
        for task_id, after_id, state in self.db.execute(sql + " ORDER BY d.task_id, d.after_id", params):
            found.setdefault(task_id, []).append((after_id, State(state)))
        return found
