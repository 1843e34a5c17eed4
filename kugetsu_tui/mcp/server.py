"""`kugetsu mcp`: the queue as an MCP server over stdio, for planner agents that delegate.

A face like the CLI: a tool checks new tasks with `Intake`, acts through `Control`, reads
through present.py (all in tools.py), and when something is wrong answers with the CLI's
one-line message as a tool error. No SQL and no process handling here. Bad arguments never
end the server; it ends when its stdin closes. Only `kugetsu mcp` imports this package (and
with it the SDK), so no other command pays for loading it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent

from kugetsu_tui import __version__
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError
from kugetsu_tui.mcp.tools import (
    LOG_LINES_MAX,
    WAIT_DEFAULT,
    WAIT_IDS_MAX,
    WAIT_MAX,
    WAIT_POLL,
    Tools,
    ids_arg,
    number_arg,
    task_id_arg,
)

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


class _Handlers:
    """One method per tool, named as the tool. Every parameter is taken as it comes (the
    SDK checks nothing) and checked here, so that a wrong value gets the same message as
    on the command line."""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools

    def add_task(
        self,
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
        return _answer(lambda: self.tools.add_task(spec))

    def get_task(self, id: Any = None) -> CallToolResult:
        return _answer(lambda: self.tools.get_task(task_id_arg(id)))

    def cancel_task(self, id: Any = None, children: Any = None) -> CallToolResult:
        if children is not None and not isinstance(children, bool):
            return _error(f"children: expected true or false, got {children!r}")
        return _answer(lambda: self.tools.cancel_task(task_id_arg(id), bool(children)))

    def task_log(self, id: Any = None, lines: Any = None) -> CallToolResult:
        return _answer(
            lambda: self.tools.task_log(
                task_id_arg(id), int(number_arg(lines, "lines", 50, 1, LOG_LINES_MAX, whole=True))
            )
        )

    def queue_status(self) -> CallToolResult:
        return _answer(self.tools.queue_status)

    async def wait_tasks(self, ids: Any = None, timeout_s: Any = None) -> CallToolResult:
        try:
            wanted = ids_arg(ids)
            limit = number_arg(timeout_s, "timeout_s", WAIT_DEFAULT, 0, WAIT_MAX, whole=False)
            watch = await anyio.to_thread.run_sync(self.tools.open_watch, wanted)
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


def build_server(tools: Tools) -> MCPServer[Any]:
    """The MCP server over `tools`, with each tool's schema and description from TOOLS."""
    handlers = _Handlers(tools)
    registered = []
    for name, (description, schema) in TOOLS.items():
        tool = Tool.from_function(
            getattr(handlers, name), name=name, description=description, structured_output=False
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
