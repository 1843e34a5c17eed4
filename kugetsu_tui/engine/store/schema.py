"""The store's schema, its migrations and the row <-> Task mapping (store/ is the only place
SQL lives)."""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from kugetsu_tui.engine.model import (
    BAD_ENDINGS,
    LIVE_STATES,
    AgentUsage,
    State,
    Task,
)

# 2: tasks_by_state; 3: tasks.cancel_requested_at; 4: tasks.parent; 5: tasks.result,
# tasks.reported_usage; 6: a task's base, changes and review; 7: tasks.needs_input; 8: tasks.session_id,
# tasks_measured; 9: spend (every attempt's reported usage, for the budget); 10: tasks.ended_by,
# tasks.requeue_note. The schema's statements are
# idempotent and missing columns are added, so an older home is brought up to date by running them again.
SCHEMA_VERSION = 10

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
    reported_usage TEXT,
    base_branch  TEXT,
    base_commit  TEXT,
    files_changed INTEGER,
    insertions   INTEGER,
    deletions    INTEGER,
    commits      INTEGER,
    review       TEXT    NOT NULL DEFAULT 'unreviewed',
    needs_input  TEXT,
    session_id   TEXT,
    ended_by     TEXT,
    requeue_note TEXT
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
-- The advisor's look at an agent's measured attempts: not a scan of every finished task.
CREATE INDEX IF NOT EXISTS tasks_measured ON tasks (agent, ended_at) WHERE peak_rss IS NOT NULL;
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
-- What each attempt's agent reported it used (tasks.reported_usage holds only the last
-- attempt's): the budget is their sum. NULL: that figure was not reported.
CREATE TABLE IF NOT EXISTS spend (
    task_id       INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    ts            REAL    NOT NULL,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost_usd      REAL,
    -- An attempt given back (a rate limit, a stop) leaves the next one its number: the
    -- attempt is told apart by when it was admitted.
    started_at    REAL    NOT NULL,
    PRIMARY KEY (task_id, started_at)
);
"""
# Columns added after version 1, as ALTER TABLE adds them to a database made before.
# result, reported_usage: what the last attempt's agent printed, as engine/agents reads it (its
# final message; the usage it reported, as JSON); session_id: the agent's session it reported;
# ended_by: why the last attempt ended (model.EndedBy); requeue_note: a note not yet delivered.
_ADDED_COLUMNS = (
    ("cancel_requested_at", "REAL"),
    ("parent", "INTEGER"),
    ("result", "TEXT"),
    ("reported_usage", "TEXT"),
    ("base_branch", "TEXT"),
    ("base_commit", "TEXT"),
    ("files_changed", "INTEGER"),
    ("insertions", "INTEGER"),
    ("deletions", "INTEGER"),
    ("commits", "INTEGER"),
    ("review", "TEXT NOT NULL DEFAULT 'unreviewed'"),
    ("needs_input", "TEXT"),
    ("session_id", "TEXT"),
    ("ended_by", "TEXT"),
    ("requeue_note", "TEXT"),
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
_ATTEMPTS_AT = _TASK_COLUMNS.index("attempts")
_AGENT_AT = _TASK_COLUMNS.index("agent")
_REPO_AT = _TASK_COLUMNS.index("repo")
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


_COLUMN_AT = {name: i for i, name in enumerate(_TASK_COLUMNS)}


def _task_from_row(row: Sequence[Any], changes: Mapping[str, Any] | None = None) -> Task:
    """The task a row holds, with `changes` (column -> value) made: built once, not
    built and then copied (a copy of a task costs as much as the rest of a transition)."""
    values = list(row)
    if changes:
        for name, value in changes.items():
            values[_COLUMN_AT[name]] = value
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


def _fill_spend(db: sqlite3.Connection) -> None:
    """Upgrade a database made before the spend ledger: the usage its tasks' last attempts
    reported goes in (what earlier attempts reported was not kept)."""
    db.execute(
        "INSERT OR IGNORE INTO spend"
        " (task_id, attempt, ts, input_tokens, output_tokens, cost_usd, started_at)"
        " SELECT id, attempts, updated_at, json_extract(reported_usage, '$.input_tokens'),"
        " json_extract(reported_usage, '$.output_tokens'), json_extract(reported_usage, '$.cost_usd'),"
        " coalesce(started_at, 0) FROM tasks WHERE reported_usage IS NOT NULL"
    )


def _sql_value(value: Any) -> Any:
    if isinstance(value, AgentUsage):
        return json.dumps(value.to_json())
    if isinstance(value, State):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value
