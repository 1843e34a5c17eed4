"""`kugetsu mcp`: the queue as an MCP server over stdio, for planner agents that delegate.

A face like the CLI: a tool checks new tasks with `Intake`, acts through `Control`, reads
through present.py, and when something is wrong answers with the CLI's one-line message as
a tool error. No SQL and no process handling here. Bad arguments never end the server; it
ends when its stdin closes. Only `kugetsu mcp` imports this module (and with it the SDK),
so no other command pays for loading it.

Each call opens its own store connection and reads the config afresh, so calls may run
side by side (the SDK runs plain functions on worker threads) and a changed cap or
`[mcp] on_full` applies to the next call. `wait_tasks` holds no slot and no lock: it
watches the store's data version and reads its tasks only when something was committed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent

from kugetsu_tui import __version__
from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.intake import Intake, caller_task, parse_task_id
from kugetsu_tui.engine.model import State, Task
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.errors import UsageError
from kugetsu_tui.present import Selection, status_report, status_summary, supervisor_facts

WAIT_MAX = 3600.0  # seconds one wait_tasks call may last
WAIT_DEFAULT = 60.0
WAIT_POLL = 0.2  # seconds between looks at the store's data version
WAIT_IDS_MAX = 100
LOG_LINES_MAX = 2000
LOG_READ_MAX = 1 << 20  # bytes of a log's end read for task_log
RESULT_CHARS = 2000  # the end of a settled task's output given as its result

INSTRUCTIONS = (
    "kugetsu runs coding-agent tasks in parallel under a machine-wide cap on live workers, "
    "each in its own git worktree. Delegate with add_task (it says whether the task runs or "
    "waits, and where in the queue), follow with get_task or wait_tasks, and read the "
    "machine's fullness with queue_status before adding many. Tasks you add from inside a "
    "kugetsu task become its children; do not wait for children while every slot is held "
    "by waiting parents (wait_tasks reports that as a deadlock)."
)

_ID = {"type": "integer", "minimum": 1, "description": "A task id, as add_task returned it."}

TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "add_task": (
        "Queue one coding task for a worker agent and say where it stands. The worker runs in its "
        "own git worktree of `repo` (default: this server's working directory), under the same "
        "machine-wide cap as every other task. Returns id, state, position (1 = next to start), "
        "wait_reason, live, cap and queued: when live >= cap the task waits, so tell your user "
        "'queued, position N' rather than adding more. Fails with max-live-workers (when the server "
        "is set to reject at the cap) or queue-full (the queue's bound), queuing nothing; both mean "
        "wait and retry later. `after` makes it wait for other tasks to succeed; `key` makes the add "
        "idempotent (a second add with the same key while the first is queued or live returns the "
        "first task's id).",
        {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "The task's full instructions for the worker."},
                "repo": {"type": "string", "description": "Path of the git repository to work in."},
                "agent": {
                    "type": "string",
                    "description": "Agent name from the config (default: its default).",
                },
                "priority": {"type": "integer", "description": "Higher starts first (default 0)."},
                "after": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "description": "Task ids that must succeed before this one starts.",
                },
                "key": {"type": "string", "description": "Idempotency key."},
                "no_worktree": {
                    "type": "boolean",
                    "description": "Run in `repo` itself (any folder) rather than a fresh git worktree.",
                },
                "timeout": {
                    "type": ["string", "number"],
                    "description": 'Longest one attempt may run: seconds, or "90s", "10m", "2h".',
                },
            },
            "required": ["prompt"],
            "additionalProperties": False,
        },
    ),
    "get_task": (
        "One task as `kugetsu status --json` shows it: state, position and wait_reason while "
        "queued, attempts, exit_code and reason once ended, branch and worktree (its changes), "
        "measured usage, parent and children, and `result`, the end of its output once it has "
        "settled.",
        {
            "type": "object",
            "properties": {"id": _ID},
            "required": ["id"],
            "additionalProperties": False,
        },
    ),
    "wait_tasks": (
        "Wait until every listed task has settled (succeeded, failed, cancelled or expired) or "
        "timeout_s passes, then return each one's state, exit_code, reason and result. Waiting "
        "holds no worker slot. Returns early with `deadlock` set when the awaited tasks cannot "
        "start because every slot is held by tasks that wait for their own queued children; "
        "`warning` says when your own task holds a slot that a child waits for. Call it again "
        "to keep waiting.",
        {
            "type": "object",
            "properties": {
                "ids": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 1,
                    "maxItems": WAIT_IDS_MAX,
                    "description": "The task ids to wait for.",
                },
                "timeout_s": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": WAIT_MAX,
                    "description": f"Longest wait in seconds (default {WAIT_DEFAULT:g}).",
                },
            },
            "required": ["ids"],
            "additionalProperties": False,
        },
    ),
    "cancel_task": (
        "Cancel a task: a queued one is dropped at once, a live one is ended (its whole process "
        "group, SIGTERM then SIGKILL) by the supervisor. Cancelled tasks are never retried. With "
        "children = true, the tasks it added that are still queued (and theirs) are cancelled too; "
        "live children keep running unless cancelled by id.",
        {
            "type": "object",
            "properties": {
                "id": _ID,
                "children": {
                    "type": "boolean",
                    "description": "Also cancel its queued descendants (default false).",
                },
            },
            "required": ["id"],
            "additionalProperties": False,
        },
    ),
    "task_log": (
        "The last lines of a task's output (its agent's stdout and stderr), with terminal escape "
        "sequences removed. Use it to see why a task failed or how far a running one got.",
        {
            "type": "object",
            "properties": {
                "id": _ID,
                "lines": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": LOG_LINES_MAX,
                    "description": "How many lines from the end (default 50).",
                },
            },
            "required": ["id"],
            "additionalProperties": False,
        },
    ),
    "queue_status": (
        "How full the machine is: cap and live (live >= cap means new tasks wait), the advisor's "
        "suggested cap and why, task counts by state, agents cooling down after a rate limit, "
        "whether admission is blocked (memory reserve), the queue's bound and whether a "
        "supervisor is running. Check it before delegating many tasks.",
        {"type": "object", "properties": {}, "additionalProperties": False},
    ),
}


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
                refuse_at = int(supervisor_facts(store, self.home, time.time()).get("cap", config.cap))
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
        row["result"] = self.result(State(row["state"]), task_id)
        return row

    def cancel_task(self, task_id: int, children: bool) -> dict[str, Any]:
        with self._open() as (_, store, control):
            queued_kids = _queued_descendants(store, task_id) if children else []
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

    def result(self, state: State, task_id: int) -> str | None:
        """The end of a settled task's output: what its agent said last."""
        if not state.is_settled:
            return None
        text, _ = _log_end(self.home.log_path(task_id), RESULT_CHARS * 4)
        text = text.strip()
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
                    "result": self.tools.result(task.state, task_id),
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
        facts = supervisor_facts(self.store, self.tools.home, time.time())
        cap = int(facts.get("cap", self.config.cap))
        live = self.store.live()
        if len(live) < cap:
            return None, None
        kids = self.store.children([t.id for t in live])
        queued_kids = {
            parent: [c for c in children if (t := self.store.get(c)) is not None and t.state is State.QUEUED]
            for parent, children in kids.items()
        }
        names = ", ".join(map(str, waiting))
        warning = None
        if self.caller is not None and any(t.id == self.caller for t in live):
            warning = (
                f"your task {self.caller} holds one of the {cap} slots ({len(live)}/{cap} live) while "
                f"task {names} waits for one; it starts only when some live task ends"
            )
        if all(queued_kids.get(t.id) for t in live):
            parents = ", ".join(str(t.id) for t in live)
            return (
                f"deadlock: all {cap} slots are held by tasks {parents}, each waiting for queued "
                f"children, so task {names} cannot start; finish or cancel a parent, or raise the "
                "cap (kugetsu cap N)",
                warning,
            )
        return None, warning


# --- argument checks: the CLI's messages for the same mistakes -------------------------


def task_id_arg(value: object, name: str = "id") -> int:
    found = None if isinstance(value, bool) else parse_task_id(str(value)) if value is not None else None
    if found is None:
        raise UsageError(f"{name}: expected a task id (a whole number >= 1), got {value!r}")
    return found


def _number(value: object, name: str, default: float, least: float, most: float, *, whole: bool) -> float:
    """A number within [least, most] (`default` when not given), or the one-line mistake."""
    if value is None:
        return default
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not least <= value <= most:
        kind = "a whole number" if whole else "a number"
        raise UsageError(f"{name}: expected {kind} from {least:g} to {most:g}, got {value!r}")
    return float(value)


def _ids_arg(value: object) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > WAIT_IDS_MAX:
        raise UsageError(f"ids: expected a list of 1 to {WAIT_IDS_MAX} task ids like [3, 4], got {value!r}")
    return [task_id_arg(item, "ids") for item in value]


def _queued_descendants(store: Store, task_id: int) -> list[int]:
    """The queued tasks among task_id's children, their children and so on."""
    found: list[int] = []
    level = [task_id]
    seen = set(level)
    while level:
        below = [c for kids in store.children(level).values() for c in kids if c not in seen]
        seen.update(below)
        found += [c for c in below if (t := store.get(c)) is not None and t.state is State.QUEUED]
        level = below
    return found


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


# --- the server ----------------------------------------------------------------------------


def _reply(value: Mapping[str, Any]) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(value, ensure_ascii=False))],
        structured_content=dict(value),
    )


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=one_line(message))], is_error=True)


def _answer(work: Any) -> CallToolResult:
    """Run one tool's work: its value, or the one-line message of a mistake as a tool error."""
    try:
        return _reply(work())
    except UsageError as err:  # AddRefused is one too
        return _error(str(err))


class _ArgumentCheck:
    """Refuses arguments a tool does not take, before the SDK would drop them unseen."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        params = ctx.params
        if ctx.method == "tools/call" and isinstance(params, dict) and params.get("name") in TOOLS:
            args = params.get("arguments")
            allowed = set(TOOLS[params["name"]][1]["properties"])
            if args is not None and not isinstance(args, dict):
                return _error(f"arguments: expected an object, got {args!r}").model_dump(
                    by_alias=True, exclude_none=True
                )
            unknown = sorted(set(args or ()) - allowed)
            if unknown:
                expected = ", ".join(sorted(allowed)) or "none"
                message = f"unknown argument {unknown[0]!r} (expected: {expected})"
                return _error(message).model_dump(by_alias=True, exclude_none=True)
        return await call_next(ctx)


def build_server(tools: Tools) -> MCPServer[Any]:
    """The MCP server over `tools`, with each tool's schema and description from TOOLS.

    Every parameter is taken as it comes (the SDK checks nothing) and checked here, so that
    a wrong value gets the same message as on the command line."""

    def add_task(
        prompt: Any = None,
        repo: Any = None,
        agent: Any = None,
        priority: Any = None,
        after: Any = None,
        key: Any = None,
        timeout: Any = None,
        no_worktree: Any = None,
    ) -> CallToolResult:
        spec = {"prompt": prompt, "repo": repo, "agent": agent, "priority": priority}
        spec.update({"after": after, "key": key, "timeout": timeout, "no_worktree": no_worktree})
        if after is not None and not isinstance(after, list):
            return _error(f"after: expected task ids like [3, 4], got {after!r}")
        return _answer(lambda: tools.add_task(spec))

    def get_task(id: Any = None) -> CallToolResult:
        return _answer(lambda: tools.get_task(task_id_arg(id)))

    def cancel_task(id: Any = None, children: Any = None) -> CallToolResult:
        if children is not None and not isinstance(children, bool):
            return _error(f"children: expected true or false, got {children!r}")
        return _answer(lambda: tools.cancel_task(task_id_arg(id), bool(children)))

    def task_log(id: Any = None, lines: Any = None) -> CallToolResult:
        return _answer(
            lambda: tools.task_log(
                task_id_arg(id), int(_number(lines, "lines", 50, 1, LOG_LINES_MAX, whole=True))
            )
        )

    def queue_status() -> CallToolResult:
        return _answer(tools.queue_status)

    async def wait_tasks(ids: Any = None, timeout_s: Any = None) -> CallToolResult:
        try:
            wanted = _ids_arg(ids)
            limit = _number(timeout_s, "timeout_s", WAIT_DEFAULT, 0, WAIT_MAX, whole=False)
            watch = await anyio.to_thread.run_sync(tools.open_watch, wanted)
        except UsageError as err:
            return _error(str(err))
        try:
            deadline = time.monotonic() + limit
            outcome: dict[str, Any] = {}
            while True:
                if await anyio.to_thread.run_sync(watch.changed) or not outcome:
                    outcome = await anyio.to_thread.run_sync(watch.look)
                if outcome["done"] or outcome["deadlock"]:
                    return _reply(await anyio.to_thread.run_sync(watch.answer, outcome, False))
                left = deadline - time.monotonic()
                if left <= 0:
                    return _reply(await anyio.to_thread.run_sync(watch.answer, outcome, True))
                await anyio.sleep(min(WAIT_POLL, left))
        finally:
            watch.close()

    functions: dict[str, Callable[..., Any]] = {
        "add_task": add_task,
        "get_task": get_task,
        "wait_tasks": wait_tasks,
        "cancel_task": cancel_task,
        "task_log": task_log,
        "queue_status": queue_status,
    }
    registered = []
    for name, (description, schema) in TOOLS.items():
        tool = Tool.from_function(
            functions[name], name=name, description=description, structured_output=False
        )
        tool.parameters = schema
        registered.append(tool)
    return MCPServer(
        "kugetsu",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=registered,
        log_level="WARNING",
        middleware=[_ArgumentCheck()],
    )


def serve(home: Home, config_path: Path) -> int:
    """Serve MCP on stdin/stdout until stdin closes."""
    build_server(Tools(home, config_path)).run("stdio")
    return 0
