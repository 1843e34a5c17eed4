"""The `kugetsu` command: parse, call the engine, print.

Every subcommand is a thin face on an engine call (Control for actions, the Supervisor
for `run`). User mistakes arrive here as UsageError/ConfigError and leave as one line
on stderr with exit code 2; nothing else is caught. Keep the import path light: `add`
must not load Textual or psutil; `status` loads psutil only when no running supervisor
has published the machine's readings (then it measures them itself, once).
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from kugetsu_tui import __version__
from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.config.kinds import ATTEMPTS, CAP, PRIORITY, ROW_ID, TIMEOUT, Whole
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home, default_home
from kugetsu_tui.engine.intake import Intake, parse_task_id
from kugetsu_tui.engine.logs import LogTail
from kugetsu_tui.engine.model import ActionResult, AddRefused, NewTask, State
from kugetsu_tui.engine.store import Store, StoreCorrupt, disk_full
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from kugetsu_tui.present import Selection


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def task_id(text: str) -> int:
    found = parse_task_id(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"expected a task id (a whole number >= 1), got {text!r}")
    return found


def duration(text: str) -> float:
    try:
        return TIMEOUT(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {TIMEOUT.expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def bounded(kind: Whole) -> Callable[[str], int]:
    """An argparse type: a whole number within the bounds config.toml's keys use too."""

    def convert(text: str) -> int:
        try:
            return kind.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.expected}, got {text!r}") from None

    return convert


integer = bounded(ROW_ID)


# --- context: the home, its config and store, opened once per command ------------------


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home = Home(Path(args.home).expanduser() if args.home else default_home()).ensure()
        self.config_path = Path(args.config).expanduser() if args.config else self.home.config_path
        self.config_broken: str | None = None
        try:
            self.config: Config = load_config(self.config_path)
        except ConfigError as err:
            if not _reads_only(args):
                raise
            # Reading must work while the file is broken: on the defaults, saying so (a
            # running supervisor keeps the last good config and publishes what it uses).
            self.config, self.config_broken = Config(path=self.config_path), str(err)
            print(
                f"kugetsu: note: {printable(str(err))}; showing the defaults until it is fixed",
                file=sys.stderr,
            )
        try:
            self.store = Store(self.home.db_path)
        except StoreCorrupt as err:
            moved = self.home.quarantine()
            raise UsageError(
                f"the state database is corrupt ({err}); it was moved to {moved}, its runs and "
                "worktrees beside it (nothing was deleted); the next command starts with an empty queue"
            ) from None
        self.control = Control(self.home, self.store)


def _reads_only(args: argparse.Namespace) -> bool:
    """Commands that only read: they work while config.toml is broken."""
    if args.func is cmd_cap:
        return args.cap is None and not args.accept
    return args.func in (cmd_status, cmd_events, cmd_tui, cmd_logs) or (
        args.func is cmd_run and not args.headless
    )


def _print_outcomes(ctx: Context, outcomes: Sequence[ActionResult]) -> int:
    for outcome in outcomes:
        done = ctx.control.wait_for(outcome)
        prefix = f"task {done.task_id}: " if done.task_id is not None else ""
        print(f"{prefix}{one_line(done.message)}")
    return 0


# --- add -----------------------------------------------------------------------------


def _read_jsonl(ctx: Context, source: str) -> list[NewTask]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-file {source}: no such file (expected JSON lines, one task each)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--from-file {source}: cannot read: {err}") from None
    return Intake(ctx.config, ctx.store).json_lines(text, source)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    if args.from_file:
        if args.prompt:
            raise UsageError("give either a prompt or --from-file, not both")
        new_tasks = _read_jsonl(ctx, args.from_file)
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
        new_tasks = [Intake(ctx.config, ctx.store).task(spec)]
    try:
        ids = ctx.control.add(new_tasks, max_queued=ctx.config.max_queued)
    except AddRefused as err:
        print(f"kugetsu: error: {err}", file=sys.stderr)
        return 3  # not a mistake in the input: the same add may succeed later
    sys.stdout.write("".join(f"{i}\n" for i in ids))
    return 0


# --- status ----------------------------------------------------------------------------


STATUS_LIMIT = 50  # rows `status` lists unless told otherwise


def state_list(text: str) -> frozenset[State]:
    names = [part.strip() for part in text.split(",")]
    bad = [n for n in names if n not in {str(s) for s in State}]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown state {bad[0]!r} (expected some of {', '.join(str(s) for s in State)})"
        )
    return frozenset(State(n) for n in names)


def id_list(text: str) -> frozenset[int]:
    return frozenset(task_id(part.strip()) for part in text.split(","))


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.present import Selection, status_report

    now = time.time()
    ids = args.id
    if ids is not None and (missing := ids - ctx.store.known(ids)):
        raise UsageError(f"no task {min(missing)} (expected an id listed by `kugetsu status`)")
    states = args.state or frozenset(State)
    if args.json:
        # For scripts, --all (or naming the ids) lifts the default limit; --limit still holds.
        limit = args.limit if args.limit is not None else None if args.all or ids else STATUS_LIMIT
        return _print_status_json(ctx, Selection(states, ids, limit), now)
    recent = None if args.all or args.state else 5  # a person sees the last few successes
    selection = Selection(states, ids, args.limit or STATUS_LIMIT, recent_succeeded=recent)
    report = status_report(ctx.store, ctx.home, ctx.config, now, selection)
    report["config_error"] = report["config_error"] or ctx.config_broken
    counts = report["counts"]
    sup = report["supervisor_pid"]
    parts = [
        f"live {report['live']}/{report['cap']}",
        f"queued {counts['queued']}",
        f"succeeded {counts['succeeded']}",
        f"failed {counts['failed']}",
    ]
    for extra in ("cancelled", "expired"):
        if counts[extra]:
            parts.append(f"{extra} {counts[extra]}")
    parts.append(f"supervisor pid {sup}" if sup else "no supervisor running")
    print(" · ".join(parts))
    if report["suggested_cap"] is not None and report["suggested_cap"] != report["cap"]:
        print(
            f"suggested cap {report['suggested_cap']} ({report['cap_mode']} mode): "
            f"{one_line(report['cap_reason'] or '')}"
        )
    for key in ("admission_blocked", "config_error"):
        if report[key]:
            print(f"note: {one_line(report[key])}")
    # Live first (newest first), then the queue in admission order, then ended tasks
    # (newest first): the report reads them in that order and no further than the limit.
    shown = report["tasks"]
    if not shown:
        print('no tasks (add one: kugetsu add "...")')
        return 0
    if args.tree:
        return _print_tree(shown, report["more"], now)
    width = max(len(str(r["id"])) for r in shown)
    print(f"{'ID':>{width}}  {'STATE':<11} {'PRI':>3}  {'TRY':<5} {'AGENT':<9} {'WHEN':<8} PROMPT / WHY")
    for r in shown:
        print(_status_row(r, width, now))
    if report["more"]:
        print(f"… and {report['more']} more (--limit N, --all, or --json --all for every task)")
    return 0


def _print_status_json(ctx: Context, selection: Selection, now: float) -> int:
    """`status --json`, written a row at a time so that a long queue is never held in
    memory whole. One read transaction, so counts and rows agree."""
    from kugetsu_tui.present import matched, status_rows, status_summary

    out = sys.stdout
    with ctx.store.reading():
        summary, running = status_summary(ctx.store, ctx.home, ctx.config, now)
        summary["config_error"] = summary.get("config_error") or ctx.config_broken
        out.write(json.dumps(summary, ensure_ascii=False)[:-1] + ', "tasks": [')
        shown = 0
        for row in status_rows(ctx.store, ctx.config, summary, now, selection, supervisor=running):
            out.write((", " if shown else "") + json.dumps(row, ensure_ascii=False))
            shown += 1
        more = matched(ctx.store, summary, selection) - shown
    out.write(f'], "more": {more}}}\n')
    return 0


def _print_tree(rows: list[dict[str, Any]], more: int, now: float) -> int:
    """`status --tree`: who delegated what, each task indented under its parent."""
    from kugetsu_tui.present import lineage

    width = max(len(str(r["id"])) for r in rows)
    for depth, r in lineage(rows):
        line = _status_row(dict(r), width, now)
        note = f"  (child of {r['parent']})" if depth == 0 and r["parent"] is not None else ""
        print(f"{'  ' * depth}{'└ ' if depth else ''}{line}{note}")
    if more:
        print(f"… and {more} more (--limit N, --all, or --json --all for every task)")
    return 0


def _status_row(r: dict[str, Any], width: int, now: float) -> str:
    """One task of `kugetsu status`; text from prompts, agents and paths made printable."""
    from kugetsu_tui.present import STATE_SYMBOL, elapsed

    state = State(r["state"])
    when = ""
    kept = ""
    detail = one_line(r["prompt"])
    if state is State.QUEUED:
        when = f"#{r['position']}" if r["position"] else "held"
        detail = f"{detail[:40]:<40}  {one_line(r['wait_reason'] or '')}"
    elif state.is_live and r["started_at"]:
        when = elapsed(now - _ts(r["started_at"]))
    elif r["ended_at"]:
        when = time.strftime("%H:%M", time.localtime(_ts(r["ended_at"])))
        if state is not State.SUCCEEDED and r["reason"]:
            detail = f"{detail[:40]:<40}  {one_line(r['reason'])}"
        if r["worktree"] and os.path.isdir(r["worktree"]):
            kept = f"  [kept {printable(r['worktree'])}]"  # in full: the one thing to act on
    agent = printable(r["agent"])[:9]
    return (
        f"{r['id']:>{width}}  {STATE_SYMBOL[state]} {state:<9} {r['priority']:>3}  "
        f"{r['attempts']}/{r['max_attempts']:<3} {agent:<9} {when:<8} {detail[:110]}{kept}"
    )


def _ts(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text).timestamp()


# --- actions ---------------------------------------------------------------------------


def _action(name: str) -> Callable[[Context, argparse.Namespace], int]:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        method: Callable[..., list[ActionResult]] = getattr(ctx.control, name)
        if name == "requeue":
            return _print_outcomes(ctx, method(args.ids, note=args.note))
        return _print_outcomes(ctx, method(args.ids))

    return run


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
    if ctx.config.cap_mode == "auto":
        print("note: [capacity] mode is auto, so the advisor will keep setting the cap", file=sys.stderr)
    return _print_outcomes(ctx, [ctx.control.set_cap(args.cap)])


# --- logs and events -------------------------------------------------------------------


LOG_CHUNK = 1 << 20  # bytes of a log read and cleaned at a time


class _LogText:
    """An agent's output made printable as it is read: escapes removed, newlines kept.

    Holds back what may be half of something (a UTF-8 character, an escape sequence)
    until the next read completes it, so a cut between reads never lets one through."""

    def __init__(self) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._pending = ""

    def feed(self, data: bytes, final: bool = False) -> str:
        text = self._pending + self._decode.decode(data, final)
        self._pending = ""
        start = text.rfind("\x1b")
        if not final and start >= 0 and len(text) - start < 256 and "\n" not in text[start:]:
            text, self._pending = text[:start], text[start:]
        return printable(text, lines=True)


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    task = ctx.store.get(args.id)
    if task is None:
        raise UsageError(f"no task {args.id} (expected an id listed by `kugetsu status`)")
    path = ctx.home.log_path(args.id)
    out = sys.stdout.buffer
    shown = _LogText()
    tail = LogTail(path)
    while True:
        chunk = tail.read(LOG_CHUNK)
        if chunk:
            out.write(shown.feed(chunk).encode())
            out.flush()
            continue
        if not args.follow:
            break
        task = ctx.store.get(args.id)
        if task is not None and task.state.is_settled:
            break
        time.sleep(0.2)
    out.write(shown.feed(b"", final=True).encode())
    if tail.position == 0:
        state = task.state if task is not None else "gone"
        print(f"kugetsu: task {args.id} ({state}) has no output yet", file=sys.stderr)
    return 0


def cmd_events(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.engine.model import EventType

    unknown = [t for t in args.type or () if t not in EventType._value2member_map_]
    if unknown:
        known = ", ".join(t.value for t in EventType)
        raise UsageError(f"--type: unknown event type {unknown[0]!r} (expected one of: {known})")
    since = args.since
    while True:
        events = ctx.store.events(since=since, task_id=args.task)
        for event in events:
            since = event.id
            if args.type and event.type not in args.type:
                continue
            print(event.to_line(), flush=True)
        if not args.follow:
            return 0
        time.sleep(0.2)


# --- run and demo ------------------------------------------------------------------------


def cmd_tui(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.tui.app import run_dashboard

    ctx.store.close()
    return run_dashboard(ctx.home, ctx.config, config_broken=ctx.config_broken)


def cmd_web(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.web import run_web, web_options

    options = web_options(ctx.config, args.host, args.port, args.token_file)
    ctx.store.close()
    return run_web(ctx.home, ctx.config, ctx.config_path, options)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    if not args.headless:
        return cmd_tui(ctx, args)
    from kugetsu_tui.headless import run_headless

    ctx.store.close()
    return run_headless(
        ctx.home, ctx.config, forever=args.forever, as_json=args.json, stop_agents=args.stop_agents
    )


def cmd_mcp(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.mcp import serve  # the MCP SDK loads only for this command

    ctx.store.close()
    return serve(ctx.home, ctx.config_path)


def cmd_demo(args: argparse.Namespace) -> int:
    from kugetsu_tui.demo import run_dashboard_demo, run_demo

    home = Path(args.home).expanduser() if args.home else None
    if not args.headless:
        return run_dashboard_demo(home=home, tasks=args.tasks)
    return run_demo(home=home, headless=args.headless, tasks=args.tasks, as_json=args.json)


# --- the parser --------------------------------------------------------------------------


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument(
        "--home",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="state directory (default: $KUGETSU_HOME, else $XDG_STATE_HOME/kugetsu)",
    )
    common.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="config file (default: HOME/config.toml)"
    )
    parser = Parser(
        prog="kugetsu",
        parents=[common],
        description="Run many coding agents in parallel, each in its own git worktree.",
    )
    parser.add_argument("--version", action="version", version=f"kugetsu-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    add = sub.add_parser("add", parents=[common], help="queue a task (prints its id)")
    add.add_argument("prompt", nargs="*", help="the task's text ('-' reads it from stdin)")
    add.add_argument("--repo", metavar="PATH", help="git repo to work in (default: the one you are in)")
    add.add_argument("--agent", metavar="NAME", help="agent from the config (default: default_agent)")
    add.add_argument(
        "--priority", type=bounded(PRIORITY), default=0, metavar="INT", help="higher runs first (default 0)"
    )
    add.add_argument(
        "--max-attempts",
        type=bounded(ATTEMPTS),
        metavar="N",
        help="attempts before it fails (default from config: 3)",
    )
    add.add_argument(
        "--timeout", type=duration, metavar="DUR", help="end an attempt that runs longer (e.g. 30m)"
    )
    add.add_argument(
        "--no-worktree", action="store_true", help="run in the repo folder itself (or any folder)"
    )
    add.add_argument("--from-file", metavar="FILE", help="JSON lines, one task each ('-' for stdin)")
    add.add_argument("--after", metavar="ID[,ID…]", help="run only after these tasks succeeded")
    add.add_argument(
        "--after-any", metavar="ID[,ID…]", help="run after these tasks settle, whatever their outcome"
    )
    add.add_argument(
        "--key",
        metavar="K",
        help="idempotent: while a task with this key is queued or live, print its id instead",
    )
    add.add_argument(
        "--base", metavar="REF", help="branch or commit the worktree starts from (default: HEAD)"
    )
    add.set_defaults(func=cmd_add)

    _queue_commands(sub, common)
    _inspect_commands(sub, common)
    return parser


def _queue_commands(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    status = sub.add_parser("status", parents=[common], help="what runs, what waits and why")
    status.add_argument("--json", action="store_true", help="one JSON object for scripts")
    status.add_argument("--tree", action="store_true", help="each task under the task that added it")
    status.add_argument(
        "--all", action="store_true", help="every succeeded task too; with --json, every task (streamed)"
    )
    status.add_argument(
        "--limit", type=positive_int, metavar="N", help=f"rows to show (default {STATUS_LIMIT})"
    )
    status.add_argument(
        "--state", type=state_list, metavar="STATE[,STATE…]", help="only tasks in these states"
    )
    status.add_argument("--id", type=id_list, metavar="ID[,ID…]", help="only these tasks")
    status.set_defaults(func=cmd_status)

    tui = sub.add_parser("tui", parents=[common], help="the dashboard (also: kugetsu with no command)")
    tui.set_defaults(func=cmd_tui)

    web = sub.add_parser("web", parents=[common], help="the dashboard in a browser, behind a token")
    web.add_argument("--host", metavar="H", help="address to listen on (default 127.0.0.1)")
    web.add_argument("--port", type=bounded(Whole(0, 65535)), metavar="P", help="port (default 8765)")
    web.add_argument("--token-file", metavar="F", help="file holding the token (default: [web] token_file)")
    web.set_defaults(func=cmd_web)

    run = sub.add_parser("run", parents=[common], help="supervise the queue")
    run.add_argument("--headless", action="store_true", help="no dashboard: print events (for CI)")
    run.add_argument("--forever", action="store_true", help="keep serving when the queue is empty")
    run.add_argument(
        "--stop-agents",
        action="store_true",
        help="on SIGTERM/SIGINT/SIGHUP end the agents (requeued) instead of leaving them running",
    )
    run.add_argument("--json", action="store_true", help="print each event as a JSON line")
    run.set_defaults(func=cmd_run)

    for name, verb in (
        ("cancel", "end live tasks (SIGTERM, then SIGKILL) or drop queued ones"),
        ("requeue", "queue failed, cancelled or expired tasks again"),
        ("pause", "stop a running task's whole process tree (SIGSTOP)"),
        ("resume", "continue a paused task (SIGCONT)"),
        ("hold", "keep a queued task from starting"),
        ("release", "let a held task run again"),
    ):
        action = sub.add_parser(name, parents=[common], help=verb)
        action.add_argument("ids", nargs="+", type=task_id, metavar="ID")
        if name == "requeue":
            action.add_argument("--note", metavar="TEXT", help="appended to the prompt of the next attempt")
        action.set_defaults(func=_action(name))

    cap = sub.add_parser("cap", parents=[common], help="show or set how many agents may be live")
    cap.add_argument("cap", nargs="?", type=bounded(CAP), metavar="N")
    cap.add_argument("--accept", action="store_true", help="set the cap to the advisor's suggestion")
    cap.set_defaults(func=cmd_cap)


def _inspect_commands(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    logs = sub.add_parser("logs", parents=[common], help="a task's output")
    logs.add_argument("id", type=task_id, metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the task settles")
    logs.set_defaults(func=cmd_logs)

    events = sub.add_parser("events", parents=[common], help="the event log as JSON lines")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    events.add_argument("--since", type=integer, default=0, metavar="ID", help="only events after this id")
    events.add_argument("--task", type=task_id, metavar="ID", help="only this task's events")
    events.add_argument("--type", action="append", metavar="TYPE", help="only this event type (repeatable)")
    events.set_defaults(func=cmd_events)

    mcp = sub.add_parser("mcp", parents=[common], help="serve planner agents over MCP (stdio)")
    mcp.set_defaults(func=cmd_mcp)

    demo = sub.add_parser("demo", parents=[common], help="a sandbox with simulated agents")
    demo.add_argument("--headless", action="store_true", help="no dashboard: print events")
    demo.add_argument("--json", action="store_true", help="with --headless: events as JSON lines")
    demo.add_argument(
        "--tasks", type=positive_int, default=12, metavar="N", help="how many tasks (default 12)"
    )
    demo.set_defaults(func=None, demo=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("home", "config"):
        if not hasattr(args, name):
            setattr(args, name, None)
    try:
        if getattr(args, "demo", False):
            return cmd_demo(args)
        if args.command is None:
            if not sys.stdout.isatty():
                parser.print_help()
                return 0
            args.func = cmd_tui
        ctx = Context(args)
        try:
            result: int = args.func(ctx, args)
        finally:
            ctx.store.close()
        return result
    except UsageError as err:
        # One line, with nothing a terminal would obey: the message may quote any input.
        print(f"kugetsu: error: {printable(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, sqlite3.OperationalError) as err:
        if not disk_full(err):
            raise
        # The write that failed was rolled back whole.
        print(
            f"kugetsu: error: out of disk space ({one_line(str(err))}); free some and try again",
            file=sys.stderr,
        )
        return 2


def entry() -> None:
    sys.exit(main())
