"""The persistent queue and event log: one SQLite file in WAL mode.

This is the only place SQL lives. Every state change is one short transaction that also
writes its event row, so the log never disagrees with the tasks. Writers take the
database lock up front (`BEGIN IMMEDIATE`), which makes admission atomic across
processes on its own, independent of the supervisor's flock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import (
    AddRefused,
    AgentUsage,
    EventType,
    IllegalTransition,
    NewTask,
    State,
    Task,
    check_transition,
    readable,
)
from kugetsu_tui.engine.store.admission import Admission
from kugetsu_tui.engine.store.reads import Reads
from kugetsu_tui.engine.store.schema import (
    _LIVE,
    _LIVE_SQL,
    _SCHEMA,
    _STATE_AT,
    _TASK_SELECT,
    _WRITABLE,
    EVENT_PROMPT_CHARS,
    QUEUE_ORDER,
    SCHEMA_VERSION,
    StoreCorrupt,
    _add_missing_columns,
    _fill_spend,
    _sql_value,
    _stored_prompt,
    _task_from_row,
    disk_full,
    event_data,
)
from kugetsu_tui.engine.store.side import Side

__all__ = ["QUEUE_ORDER", "IllegalTransition", "Store", "StoreCorrupt", "disk_full", "event_data"]


class Store(Admission, Reads, Side):
    """One connection to `state.db`. Cheap to open; one per process (or thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._batched = False  # inside batch(): writes join its transaction
        # With keep_written, the events this connection wrote that nobody took yet
        # (take_written): the supervisor hands them on without reading them back.
        self.keep_written = False
        self._written: list[Event] = []
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
                    _fill_spend(self.db)
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
        written = len(self._written)
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            # (SQLite may have rolled back already, e.g. on a full disk; a failed COMMIT
            # leaves the transaction open.)
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            del self._written[written:]
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
        cursor = self.db.execute(
            "INSERT INTO events (ts, type, task_id, data) VALUES (?, ?, ?, ?)",
            (ts, str(type_), task_id, json.dumps(data, ensure_ascii=False)),
        )
        if self.keep_written:
            assert cursor.lastrowid is not None
            self._written.append(Event(cursor.lastrowid, ts, EventType(type_), task_id, data))

    def take_written(self) -> list[Event]:
        """The events this connection wrote since the last call, in id order."""
        taken, self._written = self._written, []
        return taken

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
                ids.append(self._insert(new, now))
        return ids

    def _insert(self, new: NewTask, now: float) -> int:
        """One new queued task, its dependencies and its task_queued event; its id."""
        cur = self.db.execute(
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
        self.db.executemany(
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
        return task_id

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
            state = State(row[_STATE_AT])
            if expect is not None and state not in expect:
                return None
            if new_state != state:
                check_transition(task_id, state, new_state)
            values = {"state": str(new_state), "updated_at": now, **changes}
            task = _task_from_row(row, values)
            if "prompt" in values:
                values["prompt"] = _stored_prompt(values["prompt"])
            assignments = ", ".join(f"{k} = ?" for k in values)
            db.execute(
                f"UPDATE tasks SET {assignments} WHERE id = ?",
                (*[_sql_value(v) for v in values.values()], task_id),
            )
            usage = changes.get("reported_usage")
            if isinstance(usage, AgentUsage):
                self._enter_spend(task_id, usage, now)
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
        """Set fields that are not a change of state (pid, worktree path). A reported usage
        also goes into the spend ledger, for the attempt the task is at."""
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
            usage = changes.get("reported_usage")
            if isinstance(usage, AgentUsage):
                self._enter_spend(task_id, usage, now)

    def record(
        self, now: float, type_: EventType, task_id: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """An event that is not a task transition (cap changes, supervisor start/stop)."""
        with self._write():
            self._event(now, type_, task_id, data or {})
