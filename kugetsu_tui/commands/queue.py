"""`add`, the actions on tasks (cancel, requeue, pause, …) and `cap`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kugetsu_tui.commands.context import Context, print_outcomes
from kugetsu_tui.engine.control import UNSETTLED
from kugetsu_tui.engine.intake import Intake
from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.model import AddRefused, CapMode, NewTask
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError


def _read_jsonl(ctx: Context, source: str, force: bool) -> list[NewTask]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-file {source}: no such file (expected JSON lines, one task each)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--from-file {source}: cannot read: {err}") from None
    return _intake(ctx, force).json_lines(text, source)


def _intake(ctx: Context, force: bool) -> Intake:
    # Refused here, not when it runs: an agent that is not installed would fail every attempt.
    return Intake(ctx.config, ctx.store, check_program=not force)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    if args.from_file:
        if args.prompt:
            raise UsageError("give either a prompt or --from-file, not both")
        new_tasks = _read_jsonl(ctx, args.from_file, args.force)
    else:
        prompt = " ".join(args.prompt)
        if prompt == "-":
            prompt = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        spec = {
            "prompt": prompt,
            "repo": args.repo,
            "agent": args.agent,
            "priority": args.priority,
            "max_attempts": args.max_attempts,
            "timeout": args.timeout,
            "no_worktree": args.no_worktree,
            "after": args.after or args.after_any,
            "after_any": bool(args.after_any),
            "key": args.key,
            "base": args.base,
        }
        new_tasks = [_intake(ctx, args.force).task(spec)]
    try:
        ids = ctx.control.add(new_tasks, max_queued=ctx.config.max_queued)
    except AddRefused as err:
        print(f"kugetsu: error: {err}", file=sys.stderr)
        return 3  # not a mistake in the input: the same add may succeed later
    sys.stdout.write("".join(f"{i}\n" for i in ids))
    return 0


def task_action(name: str) -> Callable[[Context, argparse.Namespace], int]:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        method: Callable[..., list[ActionResult]] = getattr(ctx.control, name)
        if name == "requeue":
            return print_outcomes(ctx, method(args.ids, note=args.note, prompt=args.prompt))
        if name == "cancel":
            return _cancel(ctx, args)
        return print_outcomes(ctx, method(args.ids))

    return run


def cmd_priority(ctx: Context, args: argparse.Namespace) -> int:
    return print_outcomes(ctx, ctx.control.set_priority(args.ids, args.priority))


def _cancel(ctx: Context, args: argparse.Namespace) -> int:
    """Cancel; a task that added tasks of its own (a planner) takes them along with
    --children, or when a person at a terminal says so; otherwise they keep running and a
    note says how to cancel them."""
    children = bool(args.children)
    kids: list[int] = []
    if not children:
        ctx.control.find(args.ids, UNSETTLED, "cancelled")  # a bad id: refused before asking
        kids = list(
            dict.fromkeys(k for i in args.ids for k in ctx.control.descendants(i) if k not in args.ids)
        )
    if kids and sys.stdin.isatty() and sys.stdout.isatty():
        # (Not input(): without readline it puts the question on stderr.)
        print(f"{_their(args.ids, kids)} still queued or live; cancel them too? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline()
        children = answer.strip().lower() in ("y", "yes")
    code = print_outcomes(ctx, ctx.control.cancel(args.ids, children=children))
    if kids and not children:
        listed = " ".join(map(str, kids))
        print(
            f"kugetsu: note: {_their(args.ids, kids)} keep running; cancel them with "
            f"`kugetsu cancel {listed}` (or cancel with --children to take them along)",
            file=sys.stderr,
        )
    return code


def _their(ids: list[int], kids: list[int]) -> str:
    whose = f"task {ids[0]}'s" if len(ids) == 1 else "these tasks'"
    shown = ", ".join(map(str, kids[:10])) + (", …" if len(kids) > 10 else "")
    return f"{whose} {len(kids)} {'child task' if len(kids) == 1 else 'child tasks'} ({shown})"


def cmd_cap(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.present import status_report

    if args.cap is None and not args.accept:
        report = status_report(ctx.store, ctx.home, ctx.config, time.time())
        print(
            f"cap {report['cap']} ({report['cap_mode']}), live {report['live']}, "
            f"suggested {report['suggested_cap']}: {one_line(report['cap_reason'] or '')}"
        )
        return 0
    if args.accept:
        if args.cap is not None:
            raise UsageError("give either a cap N or --accept, not both")
        report = status_report(ctx.store, ctx.home, ctx.config, time.time())
        args.cap = report["suggested_cap"]
    if ctx.config.cap_mode == CapMode.AUTO:
        print("note: [capacity] mode is auto, so the advisor will keep setting the cap", file=sys.stderr)
    return print_outcomes(ctx, [ctx.control.set_cap(args.cap)])
