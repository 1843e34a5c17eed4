"""The persistent queue and event log: one SQLite file in WAL mode.

This is the only place SQL lives. Every state change is one short transaction that also
writes its event row, so the log never disagrees with the tasks. Writers take the
database lock up front (`BEGIN IMMEDIATE`), which makes admission atomic across
processes on its own, independent of the supervisor's flock.
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import sqlite3
import time
from collections.abc import Collection, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import slots
from kugetsu_tui.engine.model import (
    BAD_ENDINGS,
    LIVE_STATES,
    AddRefused,
    AgentUsage,
    Event,
    EventType,
    IllegalTransition,
    NewTask,
    Request,
    RequestAction,
    State,
    Task,
    check_transition,
    readable,
)

# 2: tasks_by_state; 3: tasks.cancel_requested_at; 4: tasks.parent; 5: tasks.result,
# tasks.reported_usage. The schema's statements are idempotent and missing columns are added,
# so an older home is brought up to date by running them again.
SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    repo         TEXT,
    no_worktree  INTEGER NOT NULL DEFAULT 0,
    priority     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    timeout      REAL,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    held         INTEGER NOT NULL DEFAULT 0,
    created_at   REAL    NOT NULL,
    queued_at    REAL    NOT NULL,
    not_before   REAL,
    worktree     TEXT,
    branch       TEXT,
    exit_code    INTEGER,
    reason       TEXT,
    started_at   REAL,
    ended_at     REAL,
    pid          INTEGER,
    pid_started  REAL,
    updated_at   REAL    NOT NULL,
    -- usage of the current (or last) attempt, as measured (NULL: not measured)
    cpu_seconds  REAL,
    peak_rss     INTEGER,
    rss          INTEGER,
    cpu_percent  REAL,
    procs        INTEGER,
    key          TEXT,
    base         TEXT,
    after_any    INTEGER NOT NULL DEFAULT 0,
    cancel_requested_at REAL,
    parent       INTEGER,
    result       TEXT,
    reported_usage TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_key ON tasks (key) WHERE key IS NOT NULL;
-- A task runs only after these tasks succeeded (or settled at all, with after_any).
CREATE TABLE IF NOT EXISTS deps (
    task_id  INTEGER NOT NULL,
    after_id INTEGER NOT NULL,
    PRIMARY KEY (task_id, after_id)
);
CREATE INDEX IF NOT EXISTS deps_by_after ON deps (after_id);
-- Serves admission (state = 'queued' ORDER BY priority DESC, id) and live counts.
CREATE INDEX IF NOT EXISTS tasks_by_queue_order ON tasks (state, priority DESC, id);
-- Timers over a long queue without reading it all: the next backoff to end, the oldest
-- wait (expiry), and what changed since a dashboard last looked.
CREATE INDEX IF NOT EXISTS tasks_backoff ON tasks (not_before) WHERE state = 'queued' AND held = 0;
CREATE INDEX IF NOT EXISTS tasks_waiting_since ON tasks (queued_at) WHERE state = 'queued' AND held = 0;
CREATE INDEX IF NOT EXISTS tasks_by_update ON tasks (updated_at);
-- The newest tasks of one state (status lists ended tasks newest first) without a sort.
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, id);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL    NOT NULL,
    type    TEXT    NOT NULL,
    task_id INTEGER,
    data    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id, id);
-- Small facts a supervisor publishes for others: effective cap, suggestion, machine.
CREATE TABLE IF NOT EXISTS meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL    NOT NULL,
    action  TEXT    NOT NULL,
    task_id INTEGER,
    arg     TEXT,
    done_at REAL,
    result  TEXT
);
CREATE INDEX IF NOT EXISTS requests_pending ON requests (done_at, id);
"""
# Columns added after version 1, as ALTER TABLE adds them to a database made before.
# result, reported_usage: what the last attempt's agent printed, as agents.py reads it (its
# final message; the usage it reported, as JSON).
_ADDED_COLUMNS = (
    ("cancel_requested_at", "REAL"),
    ("parent", "INTEGER"),
    ("result", "TEXT"),
    ("reported_usage", "TEXT"),
)
# Made after the columns above exist (an older database gets them first).
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS tasks_by_parent ON tasks (parent) WHERE parent IS NOT NULL"

_TASK_COLUMNS = tuple(f.name for f in fields(Task))
_TASK_SELECT = "SELECT " + ", ".join(_TASK_COLUMNS) + " FROM tasks"
_WRITABLE = frozenset(_TASK_COLUMNS) - {"id", "created_at"}
_LIVE = tuple(str(s) for s in LIVE_STATES)
_LIVE_SQL = "state IN (" + ",".join("?" * len(_LIVE)) + ")"
# Admission order: priority first (higher first), then first come, first served.
QUEUE_ORDER = "ORDER BY priority DESC, id ASC"
EVENT_PROMPT_CHARS = 200


_STATE_AT = _TASK_COLUMNS.index("state")
_PROMPT_AT = _TASK_COLUMNS.index("prompt")
_USAGE_AT = _TASK_COLUMNS.index("reported_usage")
_BOOL_AT = tuple(_TASK_COLUMNS.index(c) for c in ("no_worktree", "held", "after_any"))
_BAD_ENDS = "(" + ", ".join(f"'{s}'" for s in sorted(BAD_ENDINGS)) + ")"
# A queued task whose dependencies are not yet satisfied: some dependency has not
# succeeded (or, with after_any, has not settled at all).
_DEPS_UNMET = (
    "EXISTS (SELECT 1 FROM deps d JOIN tasks p ON p.id = d.after_id WHERE d.task_id = tasks.id"
    f" AND NOT (p.state = 'succeeded' OR (tasks.after_any = 1 AND p.state IN {_BAD_ENDS})))"
)


def _task_from_row(row: Sequence[Any]) -> Task:
    values = list(row)
    if isinstance(values[_PROMPT_AT], bytes):
        values[_PROMPT_AT] = values[_PROMPT_AT].decode("utf-8", "surrogateescape")
    values[_STATE_AT] = State(values[_STATE_AT])
    for i in _BOOL_AT:
        values[i] = bool(values[i])
    if values[_USAGE_AT] is not None:
        values[_USAGE_AT] = AgentUsage.from_json(json.loads(values[_USAGE_AT]))
    return Task(*values)


def event_data(task: Task, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task's fields as an event carries them (the prompt cut short)."""
    data = task.to_json()
    del data["id"]
    data["prompt"] = task.short_prompt(EVENT_PROMPT_CHARS)
    if extra:
        data.update(extra)
    return data


class StoreCorrupt(Exception):
    pass


def _stored_prompt(prompt: str) -> str | bytes:
    """A prompt that is not valid UTF-8 is kept as its exact bytes."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        return prompt.encode("utf-8", "surrogateescape")
    return prompt


class Store:
    """One connection to `state.db`. Cheap to open; one per process (or thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._batched = False  # inside batch(): writes join its transaction
        new = not path.exists()
        if new:
            # Create it private before SQLite touches it.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            self._enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                with self._write():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                    _add_missing_columns(self.db)
                    self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise StoreCorrupt(f"{path}: {err}") from None
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    def _enable_wal(self) -> None:
        """Switch to WAL mode, waiting out other processes that open the same new file.

        Changing the journal mode does not go through SQLite's busy handler: while another
        connection is switching a fresh database, it fails at once with "database is
        locked". Retry for as long as a write would wait."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the database lock from its first statement
        (inside `batch()`, a part of the batch's transaction)."""
        if self._batched:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            # (SQLite may have rolled back already, e.g. on a full disk; a failed COMMIT
            # leaves the transaction open.)
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make every write inside one transaction: one lock and one commit for many changes.

        Each change still writes its event row with it, in that same transaction, and
        all of them land or none does. The lock is held throughout: nothing slow inside."""
        if self._batched:
            yield
            return
        with self._write():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    def _event(self, ts: float, type_: EventType | str, task_id: int | None, data: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO events (ts, type, task_id, data) VALUES (?, ?, ?, ?)",
            (ts, str(type_), task_id, json.dumps(data, ensure_ascii=False)),
        )

    def data_version(self) -> int:
        """Changes whenever another connection commits: a free way to notice new work."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # --- reading ------------------------------------------------------------------

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

    # --- writing ------------------------------------------------------------------

    def add(
        self,
        new_tasks: Sequence[NewTask],
        now: float,
        *,
        max_queued: int | None = None,
        refuse_at_cap: int | None = None,
    ) -> list[int]:
        """Enqueue all of them in one transaction: all or none.

        A task with a `key` that a queued or live task already has is not added again:
        its id is the existing task's (an idempotent enqueue, safe for callers that retry).

        Refused with AddRefused, queuing nothing, when the queue would hold more than
        `max_queued` tasks, or (with `refuse_at_cap`) when that many tasks are live
        already. Both are counted inside the transaction that inserts, so concurrent
        adds cannot overshoot the bound between counting and inserting."""
        ids: list[int] = []
        with self._write() as db:
            queued = live = 0
            if max_queued is not None or refuse_at_cap is not None:
                queued = int(db.execute("SELECT count(*) FROM tasks WHERE state = 'queued'").fetchone()[0])
            if refuse_at_cap is not None:
                live = int(db.execute(f"SELECT count(*) FROM tasks WHERE {_LIVE_SQL}", _LIVE).fetchone()[0])
                if live >= refuse_at_cap:
                    raise AddRefused(
                        "max-live-workers", f"max-live-workers: {live}/{refuse_at_cap} live, {queued} queued"
                    )
            for new in new_tasks:
                if new.key is not None:
                    found = db.execute(
                        f"SELECT id FROM tasks WHERE key = ? AND (state = 'queued' OR {_LIVE_SQL})"
                        " ORDER BY id LIMIT 1",
                        (new.key, *_LIVE),
                    ).fetchone()
                    if found:
                        ids.append(int(found[0]))
                        continue
                if max_queued is not None and queued >= max_queued:
                    raise AddRefused(
                        "queue-full",
                        f"queue-full: {queued} tasks queued, the most [queue] max_queued allows "
                        "(expected fewer: wait for some to start, or raise max_queued)",
                    )
                queued += 1
                cur = db.execute(
                    "INSERT INTO tasks (prompt, agent, repo, no_worktree, priority, max_attempts,"
                    " timeout, state, created_at, queued_at, updated_at, key, base, after_any, parent)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                    (
                        _stored_prompt(new.prompt),
                        new.agent,
                        new.repo,
                        int(new.no_worktree),
                        new.priority,
                        new.max_attempts,
                        new.timeout,
                        now,
                        now,
                        now,
                        new.key,
                        new.base,
                        int(new.after_any),
                        new.parent,
                    ),
                )
                task_id = int(cur.lastrowid or 0)
                ids.append(task_id)
                db.executemany(
                    "INSERT OR IGNORE INTO deps (task_id, after_id) VALUES (?, ?)",
                    [(task_id, after) for after in new.after],
                )
                data: dict[str, Any] = {
                    "state": "queued",
                    "prompt": readable(new.prompt[:EVENT_PROMPT_CHARS]),
                    "agent": new.agent,
                    "repo": new.repo,
                    "priority": new.priority,
                    "max_attempts": new.max_attempts,
                }
                if new.after:
                    data["after"] = list(new.after)
                if new.key is not None:
                    data["key"] = new.key
                if new.parent is not None:
                    data["parent"] = new.parent
                self._event(now, EventType.TASK_QUEUED, task_id, data)
        return ids

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

    def fail_dependants(self, now: float) -> list[Task]:
        """Fail queued tasks whose dependency failed, was cancelled or expired (unless they
        run after any outcome), and theirs in turn, in one transaction."""
        failed: list[Task] = []
        with self._write() as db:
            while True:
                rows = db.execute(
                    # Driven from deps, so a long queue with no dependencies costs nothing.
                    "SELECT t.id, min(p.id), p.state FROM deps d CROSS JOIN tasks p ON p.id = d.after_id"
                    " CROSS JOIN tasks t ON t.id = d.task_id WHERE t.state = 'queued' AND t.after_any = 0"
                    f" AND p.state IN {_BAD_ENDS} GROUP BY t.id"
                ).fetchall()
                if not rows:
                    return failed
                for task_id, after_id, state in rows:
                    word = "failed" if state == "failed" else state
                    reason = f"dependency {after_id} {word}"
                    db.execute(
                        "UPDATE tasks SET state = 'failed', reason = ?, ended_at = ?, updated_at = ?"
                        " WHERE id = ?",
                        (reason, now, now, task_id),
                    )
                    row = db.execute(_TASK_SELECT + " WHERE id = ?", (task_id,)).fetchone()
                    task = _task_from_row(row)
                    self._event(now, EventType.TASK_ERROR, task_id, event_data(task))
                    failed.append(task)

    def admit(
        self,
        cap: int,
        now: float,
        limit: int | None = None,
        *,
        agent_max: Mapping[str, int] | None = None,
        repo_max: Mapping[str, int] | None = None,
        cooling: Collection[str] = (),
    ) -> list[Task]:
        """Mark queued tasks `starting` while live < cap, in one atomic step.

        Counts live, walks the runnable queued tasks in order (priority desc, id asc: not
        held, backoff passed, dependencies met), skips those whose agent or repo is at its
        own limit or whose agent is cooling down, marks the rest starting and writes their
        events, all inside one BEGIN IMMEDIATE transaction. Fails closed: a task that is not
        admitted here is untouched (no attempt spent)."""
        agent_max = agent_max or {}
        repo_max = repo_max or {}
        with self._write() as db:
            live = int(db.execute(f"SELECT count(*) FROM tasks WHERE {_LIVE_SQL}", _LIVE).fetchone()[0])
            free = cap - live
            if limit is not None:
                free = min(free, limit)
            if free <= 0:
                return []
            by_agent: dict[str, int] = {}
            by_repo: dict[str, int] = {}
            if agent_max or repo_max:
                for agent, repo, n in db.execute(
                    f"SELECT agent, repo, count(*) FROM tasks WHERE {_LIVE_SQL} GROUP BY agent, repo", _LIVE
                ):
                    by_agent[agent] = by_agent.get(agent, 0) + n
                    by_repo[repo] = by_repo.get(repo, 0) + n
            constrained = bool(agent_max or repo_max or cooling)
            sql = (
                _TASK_SELECT + " WHERE state = 'queued' AND held = 0"
                f" AND (not_before IS NULL OR not_before <= ?) AND NOT {_DEPS_UNMET} " + QUEUE_ORDER
            )
            params: tuple[Any, ...] = (now,)
            if not constrained:
                sql += " LIMIT ?"
                params = (now, free)
            picked: list[Task] = []
            for row in db.execute(sql, params):  # lazily: stops reading once the slots are filled
                task = _task_from_row(row)
                if task.agent in cooling:
                    continue
                if task.agent in agent_max and by_agent.get(task.agent, 0) >= agent_max[task.agent]:
                    continue
                if task.repo in repo_max and by_repo.get(task.repo or "", 0) >= repo_max[task.repo or ""]:
                    continue
                by_agent[task.agent] = by_agent.get(task.agent, 0) + 1
                by_repo[task.repo or ""] = by_repo.get(task.repo or "", 0) + 1
                picked.append(task)
                if len(picked) >= free:
                    break
            admitted = []
            for task in picked:
                check_transition(task.id, task.state, State.STARTING)
                task = task.replace(
                    state=State.STARTING,
                    attempts=task.attempts + 1,
                    started_at=now,
                    ended_at=None,
                    exit_code=None,
                    reason=None,
                    not_before=None,
                    pid=None,
                    pid_started=None,
                    updated_at=now,
                )
                db.execute(
                    "UPDATE tasks SET state = 'starting', attempts = ?, started_at = ?,"
                    " ended_at = NULL, exit_code = NULL, reason = NULL, not_before = NULL,"
                    " pid = NULL, pid_started = NULL, updated_at = ? WHERE id = ?",
                    (task.attempts, now, now, task.id),
                )
                self._event(now, EventType.TASK_DEQUEUED, task.id, event_data(task))
                admitted.append(task)
            return admitted

    def transition(
        self,
        task_id: int,
        new_state: State,
        *,
        now: float,
        event: EventType,
        expect: Collection[State] | None = None,
        extra: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Task | None:
        """Move one task to new_state (and set `changes`), writing `event`, atomically.

        With `expect`, the move happens only if the task is in one of those states
        right now; otherwise nothing changes and None is returned (a race lost, e.g. a
        cancel that arrives just after the task was admitted). An illegal move raises."""
        bad = set(changes) - _WRITABLE
        if bad:
            raise ValueError(f"not task columns: {sorted(bad)}")
        with self._write() as db:
            row = db.execute(_TASK_SELECT + " WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            task = _task_from_row(row)
            if expect is not None and task.state not in expect:
                return None
            if new_state != task.state:
                check_transition(task_id, task.state, new_state)
            task = task.replace(state=new_state, updated_at=now, **changes)
            values = {"state": str(new_state), "updated_at": now, **changes}
            if "prompt" in values:
                values["prompt"] = _stored_prompt(values["prompt"])
            assignments = ", ".join(f"{k} = ?" for k in values)
            db.execute(
                f"UPDATE tasks SET {assignments} WHERE id = ?",
                (*[_sql_value(v) for v in values.values()], task_id),
            )
            self._event(now, event, task_id, event_data(task, extra))
            return task

    def cancel_queued(self, task_id: int, now: float) -> Task | None:
        """Cancel a task that is still queued; None if it is not (admitted meanwhile)."""
        return self.transition(
            task_id,
            State.CANCELLED,
            now=now,
            event=EventType.TASK_CANCELLED,
            expect={State.QUEUED},
            ended_at=now,
            reason="cancelled",
        )

    def update(self, task_id: int, now: float, **changes: Any) -> None:
        """Set fields that are not a change of state (pid, worktree path)."""
        bad = set(changes) - _WRITABLE
        if bad:
            raise ValueError(f"not task columns: {sorted(bad)}")
        values = {**changes, "updated_at": now}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._write() as db:
            db.execute(
                f"UPDATE tasks SET {assignments} WHERE id = ?",
                (*[_sql_value(v) for v in values.values()], task_id),
            )

    def record(
        self, now: float, type_: EventType, task_id: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """An event that is not a task transition (cap changes, supervisor start/stop)."""
        with self._write():
            self._event(now, type_, task_id, data or {})

    def record_usage(self, readings: Sequence[tuple[int, dict[str, Any]]], now: float) -> None:
        """Store the latest usage of many live tasks in one transaction (no event rows:
        a measurement is not a change of state)."""
        if not readings:
            return
        with self._write() as db:
            for task_id, usage in readings:
                db.execute(
                    "UPDATE tasks SET cpu_seconds = ?, rss = ?, cpu_percent = ?, procs = ?,"
                    " peak_rss = max(coalesce(peak_rss, 0), ?), updated_at = ? WHERE id = ?",
                    (
                        usage["cpu_seconds"],
                        usage["rss"],
                        usage["cpu_percent"],
                        usage["procs"],
                        usage["rss"],
                        now,
                        task_id,
                    ),
                )

    def usage_history(self, agent: str, limit: int = 50, min_wall: float = 0.0) -> list[tuple[float, float]]:
        """(peak RSS, CPU cores used on average) of this agent's recent finished attempts;
        failed ones only if they ran at least `min_wall` seconds."""
        rows = self.db.execute(
            "SELECT peak_rss, cpu_seconds, ended_at - started_at FROM tasks"
            " WHERE agent = ? AND state IN ('succeeded', 'failed') AND peak_rss IS NOT NULL"
            " AND ended_at > started_at AND (state = 'succeeded' OR ended_at - started_at >= ?)"
            " ORDER BY ended_at DESC LIMIT ?",
            (agent, min_wall, limit),
        ).fetchall()
        return [(float(peak), float(cpu or 0.0) / float(wall)) for peak, cpu, wall in rows]

    def set_meta(self, values: dict[str, Any], now: float) -> None:
        with self._write() as db:
            for key, value in values.items():
                db.execute(
                    "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                    " updated_at = excluded.updated_at",
                    (key, json.dumps(value), now),
                )

    def meta(self) -> dict[str, tuple[Any, float]]:
        """Every published fact with the time it was last written."""
        return {
            k: (json.loads(v), ts) for k, v, ts in self.db.execute("SELECT key, value, updated_at FROM meta")
        }

    # --- requests to a running supervisor -----------------------------------------

    def add_request(self, action: RequestAction, task_id: int | None, arg: str | None, now: float) -> int:
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO requests (ts, action, task_id, arg) VALUES (?, ?, ?, ?)",
                (now, str(action), task_id, arg),
            )
            return int(cur.lastrowid or 0)

    def pending_requests(self) -> list[Request]:
        return [
            Request(i, RequestAction(a), t, arg)
            for i, a, t, arg in self.db.execute(
                "SELECT id, action, task_id, arg FROM requests WHERE done_at IS NULL ORDER BY id"
            )
        ]

    def finish_request(self, request_id: int, result: str, now: float) -> None:
        with self._write() as db:
            db.execute("UPDATE requests SET done_at = ?, result = ? WHERE id = ?", (now, result, request_id))

    def request_result(self, request_id: int) -> str | None:
        row = self.db.execute(
            "SELECT result FROM requests WHERE id = ? AND done_at IS NOT NULL", (request_id,)
        ).fetchone()
        return row[0] if row else None


def disk_full(err: BaseException) -> bool:
    """Is err a write that failed for want of space (SQLite's SQLITE_FULL, ENOSPC, EDQUOT)?"""
    if isinstance(err, sqlite3.OperationalError):
        return "disk is full" in str(err) or getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Upgrade a database made by an older version: add the task columns it lacks."""
    have = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")
    db.execute(_ADDED_INDEXES)


def _sql_value(value: Any) -> Any:
    if isinstance(value, AgentUsage):
        return json.dumps(value.to_json())
    if isinstance(value, State):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


__all__ = ["QUEUE_ORDER", "IllegalTransition", "Store", "StoreCorrupt", "disk_full", "event_data"]
