"""What each MCP tool does, apart from the SDK: plain values in, a JSON object out, or a
UsageError whose one-line message becomes the tool's error.

Each call opens its own store connection and reads the config afresh, so calls may run
side by side (the SDK runs plain functions on worker threads) and a changed cap or
`[mcp] on_full` applies to the next call. `wait_tasks` holds no slot and no lock: it
watches the store's data version and reads its tasks only when something was committed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import agents
from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.intake import Intake, caller_task, parse_task_id
from kugetsu_tui.engine.model import State, Task
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError
from kugetsu_tui.present import Selection, status_report, status_summary, supervisor_facts

WAIT_MAX = 3600.0  # seconds one wait_tasks call may last
WAIT_DEFAULT = 60.0
WAIT_POLL = 0.2  # seconds between looks at the store's data version
WAIT_IDS_MAX = 100
LOG_LINES_MAX = 2000
LOG_READ_MAX = 1 << 20  # bytes of a log's end read for task_log
RESULT_CHARS = 2000  # the end of a settled task's output given as its result


class Tools:
    """What each tool does, apart from the SDK: plain values in, a JSON object out, or a
    UsageError/AddRefused whose message is the tool's error."""

    def __init__(self, home: Home, config_path: Path, environ: Mapping[str, str] = os.environ) -> None:
        self.home = home
        self.config_path = config_path
        self.environ = environ
        self.cwd = os.getcwd()  # where the planner started us: the default repo

    @contextmanager
    def _open(self) -> Iterator[tuple[Config, Store, Control]]:
        config = load_config(self.config_path)
        store = Store(self.home.db_path)
        try:
            yield config, store, Control(self.home, store)
        finally:
            store.close()

    def add_task(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        with self._open() as (config, store, control):
            new = Intake(config, store, cwd=lambda: self.cwd, environ=self.environ).task(
                {k: v for k, v in spec.items() if v is not None}
            )
            refuse_at = None
            if config.mcp_on_full == "reject":
                refuse_at = _cap_in_force(store, self.home, config)
            [task_id] = control.add([new], max_queued=config.max_queued, refuse_at_cap=refuse_at)
            report = _report(store, self.home, config, task_id)
        row = _row(report, task_id)
        return {
            "id": task_id,
            "state": row["state"],
            "position": row["position"],
            "wait_reason": row["wait_reason"],
            "live": report["live"],
            "cap": report["cap"],
            "queued": report["counts"]["queued"],
            "parent": row["parent"],
        }

    def get_task(self, task_id: int) -> dict[str, Any]:
        with self._open() as (config, store, _):
            _known(store, task_id)
            report = _report(store, self.home, config, task_id)
        row = _row(report, task_id)
        row["result"] = self.result(State(row["state"]), task_id, row.get("result"))
        return row

    def cancel_task(self, task_id: int, children: bool) -> dict[str, Any]:
        with self._open() as (_, store, control):
            queued_kids = control.descendants(task_id, {State.QUEUED}) if children else []
            outcome, *kids = control.cancel([task_id, *queued_kids])
            done = control.wait_for(outcome)
            task = store.get(task_id)
        return {
            "id": task_id,
            "message": done.message,
            "state": str(task.state) if task else None,
            "children_cancelled": [k.task_id for k in kids if k.ok],
        }

    def task_log(self, task_id: int, lines: int) -> dict[str, Any]:
        with self._open() as (_, store, _):
            task = _known(store, task_id)
        text, cut = _log_end(self.home.log_path(task_id), LOG_READ_MAX)
        shown = text.splitlines()
        more = cut or len(shown) > lines
        return {
            "id": task_id,
            "state": str(task.state),
            "lines": shown[-lines:],
            "earlier_lines_left_out": more,
        }

    def queue_status(self) -> dict[str, Any]:
        with self._open() as (config, store, _):
            report, _running = status_summary(store, self.home, config, time.time())
        report["max_queued"] = config.max_queued
        report["on_full"] = config.mcp_on_full
        return report

    # --- wait_tasks: reads only, in steps, so that the caller can sleep between them ---

    def open_watch(self, ids: Sequence[int]) -> Watch:
        store = Store(self.home.db_path)
        try:
            for task_id in ids:
                _known(store, task_id)
            config = load_config(self.config_path)
        except BaseException:
            store.close()
            raise
        return Watch(self, store, config, ids, caller_task(store, self.environ))

    def result(self, state: State, task_id: int, parsed: str | None = None) -> str | None:
        """A settled task's result: the final message its agent reported (engine/agents read it
        from the agent's JSON output), else the end of its output."""
        if not state.is_settled:
            return None
        if parsed:
            return printable(parsed, lines=True)[-RESULT_CHARS:]
        text, _ = _log_end(self.home.log_path(task_id), RESULT_CHARS * 4)
        text = agents.attempt_output(text).strip()  # the last attempt's, without our lines
        return text[-RESULT_CHARS:] if text else None


class Watch:
    """One wait_tasks call's view of its tasks."""

    def __init__(
        self, tools: Tools, store: Store, config: Config, ids: Sequence[int], caller: int | None
    ) -> None:
        self.tools = tools
        self.store = store
        self.config = config
        self.ids = list(dict.fromkeys(ids))
        self.caller = caller
        self.version: int | None = None
        self.tasks: dict[int, Task] = {}

    def changed(self) -> bool:
        """Whether anything was committed since the last look (one cheap PRAGMA)."""
        version = self.store.data_version()
        fresh = version != self.version
        self.version = version
        return fresh

    def look(self) -> dict[str, Any]:
        for task_id in self.ids:
            task = self.store.get(task_id)
            if task is not None:
                self.tasks[task_id] = task
        done = all(t.state.is_settled for t in self.tasks.values())
        deadlock, warning = (None, None) if done else self._stuck()
        return {"done": done, "deadlock": deadlock, "warning": warning}

    def answer(self, outcome: Mapping[str, Any], timed_out: bool) -> dict[str, Any]:
        rows = []
        for task_id, task in self.tasks.items():
            rows.append(
                {
                    "id": task_id,
                    "state": str(task.state),
                    "exit_code": task.exit_code,
                    "reason": task.reason,
                    "result": self.tools.result(task.state, task_id, task.result),
                }
            )
        return {**outcome, "timed_out": timed_out, "tasks": rows}

    def close(self) -> None:
        self.store.close()

    def _stuck(self) -> tuple[str | None, str | None]:
        """The parent-waits-for-children deadlock, and the caller's part in it.

        Deadlock: some awaited task is queued, the cap is full, and every live task has
        queued children of its own (each looks like a parent waiting for them): none of
        those children can start until a parent ends, and no parent ends while it waits."""
        waiting = [t.id for t in self.tasks.values() if t.state is State.QUEUED and not t.held]
        if not waiting:
            return None, None
        cap = _cap_in_force(self.store, self.tools.home, self.config)
        live = self.store.live()
        if len(live) < cap:
            return None, None
        names = ", ".join(map(str, waiting))
        warning = None
        if self.caller is not None and any(t.id == self.caller for t in live):
            warning = (
                f"your task {self.caller} holds one of the {cap} slots ({len(live)}/{cap} live) while "
                f"task {names} waits for one; it starts only when some live task ends"
            )
        if self._all_wait_for_children([t.id for t in live]):
            parents = ", ".join(str(t.id) for t in live)
            return (
                f"deadlock: all {cap} slots are held by tasks {parents}, each waiting for queued "
                f"children, so task {names} cannot start; finish or cancel a parent, or raise the "
                "cap (kugetsu cap N)",
                warning,
            )
        return None, warning

    def _all_wait_for_children(self, live: list[int]) -> bool:
        """Every one of these live tasks has a queued child of its own."""
        kids = self.store.children(live)

        def queued(task_id: int) -> bool:
            task = self.store.get(task_id)
            return task is not None and task.state is State.QUEUED

        return all(any(queued(c) for c in kids.get(parent, [])) for parent in live)


# --- argument checks: the CLI's messages for the same mistakes -------------------------


def task_id_arg(value: object, name: str = "id") -> int:
    found = None if isinstance(value, bool) else parse_task_id(str(value)) if value is not None else None
    if found is None:
        raise UsageError(f"{name}: expected a task id (a whole number >= 1), got {value!r}")
    return found


def number_arg(value: object, name: str, default: float, least: float, most: float, *, whole: bool) -> float:
    """A number within [least, most] (`default` when not given), or the one-line mistake."""
    if value is None:
        return default
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not least <= value <= most:
        kind = "a whole number" if whole else "a number"
        raise UsageError(f"{name}: expected {kind} from {least:g} to {most:g}, got {value!r}")
    return float(value)


def ids_arg(value: object) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > WAIT_IDS_MAX:
        raise UsageError(f"ids: expected a list of 1 to {WAIT_IDS_MAX} task ids like [3, 4], got {value!r}")
    return [task_id_arg(item, "ids") for item in value]


def _known(store: Store, task_id: int) -> Task:
    task = store.get(task_id)
    if task is None:
        raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
    return task


def _report(store: Store, home: Home, config: Config, task_id: int) -> dict[str, Any]:
    """The status report with this one task's row (read by id, not the whole queue)."""
    return status_report(store, home, config, time.time(), Selection(ids=frozenset({task_id}), limit=None))


def _row(report: Mapping[str, Any], task_id: int) -> dict[str, Any]:
    for row in report["tasks"]:
        if row["id"] == task_id:
            return dict(row)
    raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")


def _log_end(path: Path, most: int) -> tuple[str, bool]:
    """The last `most` bytes of a log as printable text, and whether earlier bytes were left out."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - most, 0))
            data = f.read(most)
    except FileNotFoundError:
        return "", False
    cut = size > most
    if cut:  # start at a whole line
        data = data[data.find(b"\n") + 1 :]
    return printable(data.decode("utf-8", "surrogateescape"), lines=True), cut


def _cap_in_force(store: Store, home: Home, config: Config) -> int:
    """The cap a running supervisor published, else the config's."""
    facts = supervisor_facts(store, home, time.time())
    return facts.cap if facts is not None and facts.cap is not None else config.cap
