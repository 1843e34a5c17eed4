"""The store's side tables: requests from other processes to the supervisor, the facts it
publishes (meta), usage samples of running agents and the spend ledger (what agents
reported they used, summed for the budget); and a live task's needs-input flag."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine.budget import Spent
from kugetsu_tui.engine.messages import Request, RequestAction
from kugetsu_tui.engine.model import AgentUsage, EventType
from kugetsu_tui.engine.store.schema import _LIVE, _LIVE_SQL


class Side:
    """Requests, meta and usage rows of Store (mixed into it)."""

    db: sqlite3.Connection
    # Reports this connection entered in the spend ledger: a reader of spent() (the
    # supervisor) reads the sums again only when this moved.
    spend_reports: int = 0

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _event(
            self, ts: float, type_: EventType | str, task_id: int | None, data: dict[str, Any]
        ) -> None: ...

    def set_needs_input(self, task_id: int, message: str | None, now: float, by: str = "") -> bool:
        """Raise (a message) or clear (None) a live task's needs-input flag; True if it
        changed. Raising writes a task_needs_input event, clearing a task_input_given one
        (by: "person", "output" when the agent showed new output, "notify"); a task not
        live is left alone."""
        with self._write() as db:
            row = db.execute(
                f"SELECT needs_input FROM tasks WHERE id = ? AND {_LIVE_SQL}", (task_id, *_LIVE)
            ).fetchone()
            if row is None or row[0] == message or (message is not None and row[0] is not None):
                return False
            db.execute(
                "UPDATE tasks SET needs_input = ?, updated_at = ? WHERE id = ?", (message, now, task_id)
            )
            if message is not None:
                self._event(now, EventType.TASK_NEEDS_INPUT, task_id, {"reason": message, "by": by})
            else:
                self._event(now, EventType.TASK_INPUT_GIVEN, task_id, {"by": by, "was": row[0]})
            return True

    def give_input(self, task_id: int, now: float, by: str, **data: Any) -> bool:
        """Record input typed into a live task (by "person" or "rule", with what was sent):
        a task_input_given event, and its needs-input flag cleared. False if not live."""
        with self._write() as db:
            row = db.execute(
                f"SELECT needs_input FROM tasks WHERE id = ? AND {_LIVE_SQL}", (task_id, *_LIVE)
            ).fetchone()
            if row is None:
                return False
            if row[0] is not None:
                db.execute("UPDATE tasks SET needs_input = NULL, updated_at = ? WHERE id = ?", (now, task_id))
            self._event(now, EventType.TASK_INPUT_GIVEN, task_id, {"by": by, "was": row[0], **data})
            return True

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

    def _enter_spend(self, task_id: int, usage: AgentUsage, now: float) -> None:
        """An attempt's reported usage into the spend ledger, under the attempt the task is
        at (inside the caller's write): a second report of one attempt replaces the first."""
        self.db.execute(
            "INSERT OR REPLACE INTO spend"
            " (task_id, attempt, ts, input_tokens, output_tokens, cost_usd, started_at)"
            " SELECT id, attempts, ?, ?, ?, ?, coalesce(started_at, 0) FROM tasks WHERE id = ?",
            (now, usage.input_tokens, usage.output_tokens, usage.cost_usd, task_id),
        )
        self.spend_reports += 1

    def spent(self) -> Spent:
        """What every attempt's agent reported it used, summed (unreported figures left out;
        None where none was reported)."""
        cost, tokens_in, tokens_out = self.db.execute(
            "SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens) FROM spend"
        ).fetchone()
        tokens: int | None = None
        if tokens_in is not None or tokens_out is not None:
            tokens = int(tokens_in or 0) + int(tokens_out or 0)
        return Spent(None if cost is None else float(cost), tokens)

    def unmetered_tasks(self) -> int:
        """Tasks not live whose last attempt's agent reported no usage at all (they ran,
        at a cost nobody told us)."""
        row = self.db.execute(
            f"SELECT count(*) FROM tasks WHERE attempts > 0 AND reported_usage IS NULL AND NOT {_LIVE_SQL}",
            _LIVE,
        ).fetchone()
        return int(row[0])

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
