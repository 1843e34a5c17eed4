"""`attach`, `send` and `notify`: step into a terminal agent, type into it, and (from
inside an agent) say that it waits for a person (engine/terminal.py runs them)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kugetsu_tui.commands.context import Context
from kugetsu_tui.engine.intake import caller_task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError

DEFAULT_NOTE = "needs input"


def cmd_attach(ctx: Context, args: argparse.Namespace) -> int:
    argv = ctx.control.attach_argv(args.id)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    ctx.store.close()
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)


def cmd_send(ctx: Context, args: argparse.Namespace) -> int:
    ctx.control.send(args.id, args.text)
    return 0


def cmd_notify(ctx: Context, args: argparse.Namespace) -> int:
    if args.hook:
        return _notify_from_hook(ctx, args)
    if args.clear and args.message:
        raise UsageError("give either a MESSAGE or --clear, not both")
    task_id = args.task if args.task is not None else caller_task(ctx.store)
    if task_id is None:
        raise UsageError(
            "not run from inside an agent of this home (expected --task ID, or to be run by an "
            "agent, whose environment names its task)"
        )
    task = ctx.store.get(task_id)
    if task is None or not task.is_live:
        state = task.state if task is not None else "no such task"
        raise UsageError(f"task {task_id} ({state}) is not live (expected a running task)")
    if args.clear:
        ctx.store.set_needs_input(task_id, None, time.time(), by="notify")
        return 0
    note = one_line(args.message)[:200] or DEFAULT_NOTE
    # Silent: anything printed would be the agent's output, which clears the flag.
    ctx.store.set_needs_input(task_id, note, time.time(), by="notify")
    return 0


# Claude Code's hook events that mean the person has answered or the question is gone.
CLEARING_EVENTS = frozenset({"Stop", "SubagentStop", "UserPromptSubmit", "SessionEnd"})


def hook_verdict(payload: object) -> tuple[str, str] | None:
    """What a hook's JSON says: ("raise", why) or ("clear", ""), None for nothing to do.
    Claude Code sends {"hook_event_name": "Notification", "message": ...} (and Stop,
    UserPromptSubmit ...) on stdin; codex's notify program gets {"type":
    "agent-turn-complete", "last-assistant-message": ...} as its last argument."""
    if not isinstance(payload, dict):
        return None
    event, kind = payload.get("hook_event_name"), payload.get("type")
    if event == "Notification":
        return "raise", str(payload.get("message") or DEFAULT_NOTE)
    if event in CLEARING_EVENTS:
        return "clear", ""
    if kind == "agent-turn-complete":
        said = one_line(str(payload.get("last-assistant-message") or ""))
        return "raise", f"turn complete: {said}" if said else "turn complete"
    return None


def _notify_from_hook(ctx: Context, args: argparse.Namespace) -> int:
    """`notify --hook`: run by an agent's hook with the hook's JSON (MESSAGE, else stdin).
    Never exit 2, which Claude Code takes as "block this" (a Stop hook's 2 keeps the agent
    going): a problem prints one line and exits 1; outside an agent of this home (the same
    hook runs in sessions kugetsu did not start) it does nothing."""
    text = args.message or sys.stdin.read()
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        print(f"kugetsu: notify --hook: not JSON ({err.msg}); expected the hook's JSON", file=sys.stderr)
        return 1
    task_id = args.task if args.task is not None else caller_task(ctx.store)
    verdict = hook_verdict(payload)
    if task_id is None or verdict is None:
        return 0
    action, why = verdict
    note = one_line(why)[:200] or DEFAULT_NOTE
    ctx.store.set_needs_input(task_id, note if action == "raise" else None, time.time(), by="notify")
    return 0
