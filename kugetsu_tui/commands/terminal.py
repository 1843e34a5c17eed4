"""`attach`, `send` and `notify`: step into a terminal agent, type into it, and (from
inside an agent) say that it waits for a person (engine/terminal.py runs them)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from kugetsu_tui.commands.context import Context
from kugetsu_tui.engine import terminal
from kugetsu_tui.engine.intake import caller_task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError

DEFAULT_NOTE = "needs input"


def _terminal_task(ctx: Context, task_id: int) -> int:
    """task_id if it names a live terminal task, else a UsageError saying what was expected."""
    task = ctx.store.get(task_id)
    if task is None:
        raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
    if not task.is_live or not terminal.is_live(ctx.home.root, task_id):
        raise UsageError(
            f"task {task_id} ({task.state}) has no live terminal "
            "(expected a running task of an agent with terminal = true)"
        )
    return task_id


def cmd_attach(ctx: Context, args: argparse.Namespace) -> int:
    task_id = _terminal_task(ctx, args.id)
    ctx.store.set_needs_input(task_id, None, time.time())
    argv = terminal.attach_argv(ctx.home.root, task_id)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    ctx.store.close()
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)


def cmd_send(ctx: Context, args: argparse.Namespace) -> int:
    task_id = _terminal_task(ctx, args.id)
    if not terminal.send(ctx.home.root, task_id, args.text):
        raise UsageError(f"task {task_id}: its terminal ended before the text could be sent")
    ctx.store.set_needs_input(task_id, None, time.time())
    return 0


def cmd_notify(ctx: Context, args: argparse.Namespace) -> int:
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
    note = one_line(args.message)[:200] or DEFAULT_NOTE
    # Silent: anything printed would be the agent's output, which clears the flag.
    ctx.store.set_needs_input(task_id, note, time.time(), by="notify")
    return 0
