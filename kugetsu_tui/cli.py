"""The `kugetsu` command: parse, call the engine, print.

Every subcommand is a thin face on an engine call (Control for actions, the Supervisor
for `run`). User mistakes arrive here as UsageError/ConfigError and leave as one line
on stderr with exit code 2; nothing else is caught. Keep the import path light: `add`
must not load Textual or psutil; `status` loads psutil only when no running supervisor
has published the machine's readings (then it measures them itself, once).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kugetsu_tui import __version__
from kugetsu_tui.config import Config, load_config, parse_duration
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home, default_home
from kugetsu_tui.engine.logs import LogTail
from kugetsu_tui.engine.model import LIVE_STATES, ActionResult, Event, NewTask, State
from kugetsu_tui.engine.store import Store, StoreCorrupt
from kugetsu_tui.errors import UsageError

MAX_ARG_BYTES = 131072  # Linux: one argv element, its NUL included (MAX_ARG_STRLEN)
ADD_KEYS = (
    "prompt",
    "repo",
    "agent",
    "priority",
    "max_attempts",
    "timeout",
    "no_worktree",
    "after",
    "after_any",
    "key",
    "base",
)


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(message: str) -> str:
    """An error stays one line even when it quotes input with line breaks in it."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def task_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a task id (a whole number >= 1), got {text!r}")
    return int(text)


def duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
        if seconds == math.inf:  # a few hundred digits
            raise ValueError(text)
        return seconds
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a duration like "90s", "10m" or "24h", got {text!r}'
        ) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


# --- context: the home, its config and store, opened once per command ------------------


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home = Home(Path(args.home).expanduser() if args.home else default_home()).ensure()
        self.config_path = Path(args.config).expanduser() if args.config else self.home.config_path
        self.config: Config = load_config(self.config_path)
        try:
            self.store = Store(self.home.db_path)
        except StoreCorrupt as err:
            moved = self.home.quarantine()
            raise UsageError(
                f"the state database is corrupt ({err}); it was moved to {moved}, its runs and "
                "worktrees beside it (nothing was deleted); the next command starts with an empty queue"
            ) from None
        self.control = Control(self.home, self.store)


def _print_outcomes(ctx: Context, outcomes: Sequence[ActionResult]) -> int:
    for outcome in outcomes:
        done = ctx.control.wait_for(outcome)
        prefix = f"task {done.task_id}: " if done.task_id is not None else ""
        print(f"{prefix}{done.message}")
    return 0


# --- add -----------------------------------------------------------------------------


def _new_task(ctx: Context, spec: dict[str, Any], where: str, repo_cache: dict[str, str]) -> NewTask:
    """Validate one task's options (from argv or a JSON line) into a NewTask."""
    from kugetsu_tui.engine.worktree import repo_root

    prompt = spec.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(
            f'{where}empty prompt (expected the task\'s text, e.g. kugetsu add "fix the flaky test")'
        )
    agent = spec.get("agent")
    if agent is None:
        agent = ctx.config.default_agent
    if not isinstance(agent, str):
        raise UsageError(f"{where}agent: expected an agent name, got {agent!r}")
    if ctx.config.agent(agent).prompt_via == "argv":  # (raises for an unknown agent)
        if "\x00" in prompt:
            raise UsageError(
                f"{where}the prompt contains a NUL byte, which a command line cannot carry "
                '(expected none, or an agent with prompt_via = "stdin" or "file")'
            )
        size = len(prompt.encode("utf-8", "surrogateescape"))
        if size >= MAX_ARG_BYTES:
            raise UsageError(
                f"{where}the prompt is {size} bytes, more than one command-line argument can carry "
                f'({MAX_ARG_BYTES - 1}); expected a shorter prompt, or an agent with prompt_via = "stdin" or "file"'
            )
    priority = spec.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise UsageError(f"{where}priority: expected a whole number, got {priority!r}")
    attempts = spec.get("max_attempts")
    if attempts is None:  # not `or`: an explicit 0 is a mistake to report, not a default
        attempts = ctx.config.max_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise UsageError(f"{where}max_attempts: expected a whole number >= 1, got {attempts!r}")
    timeout = spec.get("timeout")
    if timeout is not None:
        try:
            if isinstance(timeout, bool):
                raise ValueError
            timeout = float(timeout) if isinstance(timeout, (int, float)) else parse_duration(str(timeout))
            if not 0 < timeout < math.inf:  # JSON lines may say NaN or Infinity
                raise ValueError
        except ValueError:
            raise UsageError(
                f'{where}timeout: expected a duration like "90s", "10m" or "24h", got {spec["timeout"]!r}'
            ) from None
    no_worktree = spec.get("no_worktree", False)
    if not isinstance(no_worktree, bool):
        raise UsageError(f"{where}no_worktree: expected true or false, got {no_worktree!r}")
    repo_arg = spec.get("repo")
    if repo_arg is not None and not isinstance(repo_arg, str):
        raise UsageError(f"{where}repo: expected a path, got {repo_arg!r}")
    raw = str(Path(repo_arg).expanduser()) if repo_arg else os.getcwd()
    if raw not in repo_cache:
        path = Path(raw).resolve()
        if no_worktree:
            if not path.is_dir():
                raise UsageError(f"{where}repo {path} does not exist (expected a directory)")
            repo_cache[raw] = str(path)
        else:
            try:
                repo_cache[raw] = str(repo_root(path))
            except UsageError as err:
                raise UsageError(f"{where}{err}") from None
    after = spec.get("after") or []
    if isinstance(after, str):
        after = [part for part in after.split(",") if part.strip()]
    if not isinstance(after, list):
        raise UsageError(f"{where}after: expected task ids like [3, 4], got {after!r}")
    after_ids = []
    for item in after:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or int(text) < 1:
            raise UsageError(f"{where}after: expected task ids (whole numbers >= 1), got {item!r}")
        if ctx.store.get(int(text)) is None:
            raise UsageError(f"{where}after: no task {text} (expected an id listed by `kugetsu status`)")
        after_ids.append(int(text))
    key, base = spec.get("key"), spec.get("base")
    for name, value in (("key", key), ("base", base)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise UsageError(f"{where}{name}: expected a non-empty string, got {value!r}")
    after_any = spec.get("after_any", False)
    if not isinstance(after_any, bool):
        raise UsageError(f"{where}after_any: expected true or false, got {after_any!r}")
    return NewTask(
        prompt=prompt,
        agent=agent,
        repo=repo_cache[raw],
        no_worktree=no_worktree,
        priority=priority,
        max_attempts=attempts,
        timeout=timeout,
        key=key,
        base=base,
        after=tuple(after_ids),
        after_any=after_any,
    )


def _read_jsonl(ctx: Context, source: str) -> list[NewTask]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-file {source}: no such file (expected JSON lines, one task each)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--from-file {source}: cannot read: {err}") from None
    tasks = []
    cache: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{n}: "
        try:
            spec = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(f"{where}not valid JSON ({err.msg}); expected one JSON object a line") from None
        if not isinstance(spec, dict):
            raise UsageError(
                f'{where}expected a JSON object like {{"prompt": "..."}}, got {type(spec).__name__}'
            )
        unknown = set(spec) - set(ADD_KEYS)
        if unknown:
            raise UsageError(f"{where}unknown key {sorted(unknown)[0]!r} (expected: {', '.join(ADD_KEYS)})")
        tasks.append(_new_task(ctx, spec, where, cache))
    if not tasks:
        raise UsageError(f"--from-file {source}: no tasks in it (expected JSON lines, one task each)")
    return tasks


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
        new_tasks = [_new_task(ctx, spec, "", {})]
    ids = ctx.control.add(new_tasks)
    sys.stdout.write("".join(f"{i}\n" for i in ids))
    return 0


# --- status ----------------------------------------------------------------------------


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.present import STATE_SYMBOL, elapsed, status_report

    now = time.time()
    report = status_report(ctx.store, ctx.home, ctx.config, now)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
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
        print(f"suggested cap {report['suggested_cap']} ({report['cap_mode']} mode): {report['cap_reason']}")
    for key in ("admission_blocked", "config_error"):
        if report[key]:
            print(f"note: {report[key]}")
    rows = report["tasks"]
    order = {**{str(s): 0 for s in LIVE_STATES}, "queued": 1}
    rows.sort(key=lambda r: (order.get(r["state"], 2), 0 if r["state"] == "queued" else -r["id"]))
    if not args.all:
        rows = [r for r in rows if r["state"] != "succeeded"] + [
            r for r in rows if r["state"] == "succeeded"
        ][:5]
    shown = rows[: args.limit]
    if not shown:
        print('no tasks (add one: kugetsu add "...")')
        return 0
    width = max(len(str(r["id"])) for r in shown)
    print(f"{'ID':>{width}}  {'STATE':<11} {'PRI':>3}  {'TRY':<5} {'AGENT':<9} {'WHEN':<8} PROMPT / WHY")
    for r in shown:
        state = State(r["state"])
        when = ""
        kept = ""
        detail = " ".join(r["prompt"].split())
        if state is State.QUEUED:
            when = f"#{r['position']}" if r["position"] else "held"
            detail = f"{detail[:40]:<40}  {r['wait_reason']}"
        elif state.is_live and r["started_at"]:
            when = elapsed(now - _ts(r["started_at"]))
        elif r["ended_at"]:
            when = time.strftime("%H:%M", time.localtime(_ts(r["ended_at"])))
            if state is not State.SUCCEEDED and r["reason"]:
                detail = f"{detail[:40]:<40}  {r['reason']}"
            if r["worktree"]:
                kept = f"  [kept {r['worktree']}]"  # in full: the one thing to act on
        print(
            f"{r['id']:>{width}}  {STATE_SYMBOL[state]} {state:<9} {r['priority']:>3}  "
            f"{r['attempts']}/{r['max_attempts']:<3} {r['agent'][:9]:<9} {when:<8} {detail[:110]}{kept}"
        )
    if len(rows) > len(shown):
        print(f"… and {len(rows) - len(shown)} more (--limit N, --all, or --json for every task)")
    return 0


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
            f"suggested {report['suggested_cap']}: {report['cap_reason']}"
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


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    task = ctx.store.get(args.id)
    if task is None:
        raise UsageError(f"no task {args.id} (expected an id listed by `kugetsu status`)")
    path = ctx.home.log_path(args.id)
    out = sys.stdout.buffer
    tail = LogTail(path)
    while True:
        chunk = tail.read()
        if chunk:
            out.write(chunk)
            out.flush()
            continue
        if not args.follow:
            break
        task = ctx.store.get(args.id)
        if task is not None and task.state.is_settled:
            break
        time.sleep(0.2)
    return 0


def cmd_events(ctx: Context, args: argparse.Namespace) -> int:
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


def event_line(event: Event) -> str:
    """One human line per event, for `run --headless` without --json."""
    data = event.data
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    kind = event.type.removeprefix("task_")
    if event.task_id is None:
        detail = ", ".join(f"{k} {v}" for k, v in data.items())
        return f"{stamp}  {kind:<10} {detail}"
    prompt = " ".join(str(data.get("prompt", "")).split())[:50]
    extra = ""
    if data.get("reason") and kind not in ("completed", "started", "dequeued"):
        extra = f"  ({data['reason']})"
    attempt = f" {data.get('attempts')}/{data.get('max_attempts')}" if "attempts" in data else ""
    return f"{stamp}  {kind:<10} task {event.task_id}{attempt} [{data.get('agent', '')}] {prompt}{extra}"


def run_headless(
    home: Home, config: Config, *, forever: bool, as_json: bool, stop_agents: bool = False
) -> int:
    import asyncio

    from kugetsu_tui.engine.supervisor import Supervisor

    def show(events: list[Event]) -> None:
        # One write per batch of events, not one per line: a tick may settle and start many.
        lines = [
            event.to_line() if as_json else event_line(event)
            for event in events
            if as_json or event.type != "task_dequeued"
        ]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    supervisor = Supervisor(home, config, forever=forever, on_events=show, stop_agents=stop_agents)
    return asyncio.run(supervisor.run())


def cmd_tui(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.tui.app import run_dashboard

    ctx.store.close()
    return run_dashboard(ctx.home, ctx.config)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    if not args.headless:
        return cmd_tui(ctx, args)
    ctx.store.close()
    return run_headless(
        ctx.home, ctx.config, forever=args.forever, as_json=args.json, stop_agents=args.stop_agents
    )


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.headless:
        import tempfile

        from kugetsu_tui.config import load_config
        from kugetsu_tui.demo import prepare
        from kugetsu_tui.tui.app import run_dashboard

        root = Path(args.home).expanduser() if args.home else Path(tempfile.mkdtemp(prefix="kugetsu-demo-"))
        sandbox = prepare(root, args.tasks)
        code = run_dashboard(sandbox, load_config(sandbox.config_path))
        print(f"kugetsu demo: the sandbox stays in {root}; look again with  kugetsu --home {sandbox.root}")
        return code
    from kugetsu_tui.demo import run_demo

    return run_demo(
        home=Path(args.home).expanduser() if args.home else None,
        headless=args.headless,
        tasks=args.tasks,
        as_json=args.json,
    )


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
        "--priority", type=integer, default=0, metavar="INT", help="higher runs first (default 0)"
    )
    add.add_argument(
        "--max-attempts",
        type=positive_int,
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

    status = sub.add_parser("status", parents=[common], help="what runs, what waits and why")
    status.add_argument("--json", action="store_true", help="one JSON object for scripts")
    status.add_argument("--all", action="store_true", help="every succeeded task too")
    status.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="rows to show (default 50)"
    )
    status.set_defaults(func=cmd_status)

    tui = sub.add_parser("tui", parents=[common], help="the dashboard (also: kugetsu with no command)")
    tui.set_defaults(func=cmd_tui)

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
    cap.add_argument("cap", nargs="?", type=positive_int, metavar="N")
    cap.add_argument("--accept", action="store_true", help="set the cap to the advisor's suggestion")
    cap.set_defaults(func=cmd_cap)

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

    from kugetsu_tui import cli_review

    cli_review.register(sub, common)

    demo = sub.add_parser("demo", parents=[common], help="a sandbox with simulated agents")
    demo.add_argument("--headless", action="store_true", help="no dashboard: print events")
    demo.add_argument("--json", action="store_true", help="with --headless: events as JSON lines")
    demo.add_argument(
        "--tasks", type=positive_int, default=12, metavar="N", help="how many tasks (default 12)"
    )
    demo.set_defaults(func=None, demo=True)
    return parser


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
        print(f"kugetsu: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:
    sys.exit(main())
