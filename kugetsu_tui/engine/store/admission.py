"""Admission, the store's one decision: which queued tasks become starting, under the cap
and the agents' and repos' own limits, in one atomic step; and failing the tasks whose
dependencies failed."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine.model import EventType, State, Task, check_transition
from kugetsu_tui.engine.store.schema import (
    _AGENT_AT,
    _ATTEMPTS_AT,
    _BAD_ENDS,
    _DEPS_UNMET,
    _LIVE,
    _LIVE_SQL,
    _REPO_AT,
    _STATE_AT,
    _TASK_SELECT,
    QUEUE_ORDER,
    _task_from_row,
    event_data,
)

_NO_LIMIT = 1 << 62  # (an agent or repo without a limit of its own)


class Admission:
    """admit() and fail_dependants() of Store (mixed into it)."""

    db: sqlite3.Connection

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _event(
            self, ts: float, type_: EventType | str, task_id: int | None, data: dict[str, Any]
        ) -> None: ...

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
            free = cap - live if limit is None else min(cap - live, limit)
            if free <= 0:
                return []
            picked = self._pick(now, free, agent_max, repo_max, cooling)
            admitted = [self._mark_starting(row, now) for row in picked]
            for task in admitted:
                self._event(now, EventType.TASK_DEQUEUED, task.id, event_data(task))
            return admitted

    def _pick(
        self,
        now: float,
        free: int,
        agent_max: Mapping[str, int],
        repo_max: Mapping[str, int],
        cooling: Collection[str],
    ) -> list[Sequence[Any]]:
        """Up to `free` runnable queued rows in queue order, skipping those whose agent or
        repo is at its own limit or whose agent is cooling down."""
        sql = (
            _TASK_SELECT + " WHERE state = 'queued' AND held = 0"
            f" AND (not_before IS NULL OR not_before <= ?) AND NOT {_DEPS_UNMET} " + QUEUE_ORDER
        )
        if not (agent_max or repo_max or cooling):
            return list(self.db.execute(sql + " LIMIT ?", (now, free)))
        by_agent: dict[str, int] = {}
        by_repo: dict[str, int] = {}
        for agent, repo, n in self.db.execute(
            f"SELECT agent, repo, count(*) FROM tasks WHERE {_LIVE_SQL} GROUP BY agent, repo", _LIVE
        ):
            by_agent[agent] = by_agent.get(agent, 0) + n
            by_repo[repo or ""] = by_repo.get(repo or "", 0) + n
        picked: list[Sequence[Any]] = []
        for row in self.db.execute(sql, (now,)):  # lazily: stops reading once the slots are filled
            agent, repo = row[_AGENT_AT], row[_REPO_AT] or ""
            if (
                agent in cooling
                or by_agent.get(agent, 0) >= agent_max.get(agent, _NO_LIMIT)
                or by_repo.get(repo, 0) >= repo_max.get(repo, _NO_LIMIT)
            ):
                continue
            by_agent[agent] = by_agent.get(agent, 0) + 1
            by_repo[repo] = by_repo.get(repo, 0) + 1
            picked.append(row)
            if len(picked) >= free:
                break
        return picked

    def _mark_starting(self, row: Sequence[Any], now: float) -> Task:
        """The queued task of `row` made starting: its attempt counted, the last one's
        ending and output cleared."""
        task = _task_from_row(
            row,
            {
                "state": State.STARTING,
                "attempts": row[_ATTEMPTS_AT] + 1,
                "started_at": now,
                "ended_at": None,
                "exit_code": None,
                "reason": None,
                "not_before": None,
                "pid": None,
                "pid_started": None,
                "result": None,
                "reported_usage": None,
                "updated_at": now,
            },
        )
        check_transition(task.id, State(row[_STATE_AT]), State.STARTING)
        self.db.execute(
            "UPDATE tasks SET state = 'starting', attempts = ?, started_at = ?,"
            " ended_at = NULL, exit_code = NULL, reason = NULL, not_before = NULL,"
            " pid = NULL, pid_started = NULL, needs_input = NULL, result = NULL, reported_usage = NULL,"
            " updated_at = ? WHERE id = ?",
            (task.attempts, now, now, task.id),
        )
        return task
