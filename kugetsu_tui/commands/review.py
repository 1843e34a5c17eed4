"""`kugetsu diff | merge | discard | gc | shell`: look at what a task's agent did, land it or
drop it, and collect what is left. Thin faces on engine/review.py (read) and Control
(merge, discard, gc: the same calls the dashboard makes). Everything printed that came
from a task, a path or git passes through `printable`. kugetsu_tui.cli adds these commands
to its parser with `register`, handing over its argument converters.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kugetsu_tui.commands.context import Context
from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError


def _task(ctx: Context, task_id: int) -> Task:
    task = ctx.store.get(task_id)
    if task is None:
        raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
    return task


def _report(outcomes: list[ActionResult]) -> int:
    """One line per task: on stdout when done, on stderr when not (then exit 1)."""
    code = 0
    for outcome in outcomes:
        line = printable(f"task {outcome.task_id}: {outcome.message}")
        if outcome.ok:
            print(line)
        else:
            print(f"kugetsu: {line}", file=sys.stderr)
            code = 1
    return code


def cmd_diff(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.engine.review import ReviewError

    try:
        text = ctx.control.diff(args.id, stat=args.stat)
    except ReviewError as err:
        print(f"kugetsu: {printable(str(err))}", file=sys.stderr)
        return 1
    sys.stdout.write(printable(text, lines=True))
    sys.stdout.flush()
    if not text:
        print(f"kugetsu: task {args.id}: no changes", file=sys.stderr)
    return 0


def cmd_merge(ctx: Context, args: argparse.Namespace) -> int:
    strategy = args.strategy or ("squash" if args.squash else "rebase" if args.rebase else None)
    strategy = strategy or ctx.config.review_strategy
    return _report([ctx.control.merge(args.id, into=args.into, strategy=strategy, keep=args.keep)])


def cmd_discard(ctx: Context, args: argparse.Namespace) -> int:
    return _report(ctx.control.discard(args.ids))


def cmd_gc(ctx: Context, args: argparse.Namespace) -> int:
    outcomes = ctx.control.gc(args.older_than)
    if not outcomes:
        print("nothing to remove")
    return _report(outcomes)


def cmd_shell(ctx: Context, args: argparse.Namespace) -> int:
    task = _task(ctx, args.id)
    where = (
        Path(task.worktree) if task.worktree else Path(task.repo) if task.no_worktree and task.repo else None
    )
    if where is None or not where.is_dir():
        raise UsageError(
            f"task {task.id} has no worktree left (removed when it was clean, merged or discarded); "
            f"expected a task with a worktree (`kugetsu status` shows [kept PATH])"
        )
    shell = os.environ.get("SHELL") or "/bin/sh"
    print(
        f"kugetsu: a shell in task {task.id}'s worktree {printable(str(where))} (exit to return)",
        file=sys.stderr,
    )
    ctx.store.close()
    env = {**os.environ, "KUGETSU_TASK_ID": str(task.id)}
    try:
        return subprocess.run([shell], cwd=where, env=env, check=False).returncode
    except OSError as err:
        raise UsageError(f"cannot start $SHELL {shell!r}: {err.strerror}") from None


def _strategy(text: str) -> str:
    from kugetsu_tui.engine.config.keys import MERGE_STRATEGIES

    if text not in MERGE_STRATEGIES:
        raise argparse.ArgumentTypeError(f"expected merge, squash or rebase, got {text!r}")
    return text


def register(
    sub: Any,
    common: argparse.ArgumentParser,
    *,
    task_id: Callable[[str], int],
    duration: Callable[[str], float],
) -> None:
    """Add the review commands to `kugetsu`'s subparsers."""
    diff = sub.add_parser("diff", parents=[common], help="what a task changed against where it started")
    diff.add_argument("id", type=task_id, metavar="ID")
    diff.add_argument("--stat", action="store_true", help="files and line counts only")
    diff.set_defaults(func=cmd_diff)

    merge = sub.add_parser("merge", parents=[common], help="land a task's branch on its base branch")
    merge.add_argument("id", type=task_id, metavar="ID")
    how = merge.add_mutually_exclusive_group()
    how.add_argument(
        "--strategy",
        type=_strategy,
        metavar="HOW",
        help="merge (a merge commit), squash (one commit) or rebase (its commits replayed on the "
        "target); default: [review] strategy in the config, else merge",
    )
    how.add_argument("--squash", action="store_true", help="as one commit (--strategy squash)")
    how.add_argument("--rebase", action="store_true", help="its commits replayed (--strategy rebase)")
    merge.add_argument("--into", metavar="BRANCH", help="the branch to land on (default: where it started)")
    merge.add_argument("--keep", action="store_true", help="keep its worktree and branch afterwards")
    merge.set_defaults(func=cmd_merge)

    discard = sub.add_parser("discard", parents=[common], help="remove a settled task's worktree and branch")
    discard.add_argument("ids", nargs="+", type=task_id, metavar="ID")
    discard.set_defaults(func=cmd_discard)

    gc = sub.add_parser(
        "gc", parents=[common], help="remove what is left of merged, discarded and empty tasks"
    )
    gc.add_argument(
        "--older-than",
        type=duration,
        default=0.0,
        metavar="DUR",
        help="only tasks settled this long ago (e.g. 7d)",
    )
    gc.set_defaults(func=cmd_gc)

    shell = sub.add_parser("shell", parents=[common], help="a shell ($SHELL) in a task's worktree")
    shell.add_argument("id", type=task_id, metavar="ID")
    shell.set_defaults(func=cmd_shell)
