"""The `kugetsu` command: the parser, the entry point and the error edge.

Every subcommand is a thin face on an engine call (Control for actions, the Supervisor
for `run`); their bodies live in kugetsu_tui.commands. User mistakes arrive here as
UsageError/ConfigError and leave as one line on stderr with exit code 2; nothing else
is caught. Keep the import path light: `add` must not load Textual or psutil; `status`
loads psutil only when no running supervisor has published the machine's readings
(then it measures them itself, once).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from kugetsu_tui import __version__
from kugetsu_tui.commands import review
from kugetsu_tui.commands.agents import cmd_agents
from kugetsu_tui.commands.context import Context
from kugetsu_tui.commands.events import cmd_events
from kugetsu_tui.commands.logs import cmd_logs
from kugetsu_tui.commands.queue import cmd_add, cmd_cap, cmd_priority, task_action
from kugetsu_tui.commands.run import cmd_demo, cmd_mcp, cmd_run, cmd_tui, cmd_web
from kugetsu_tui.commands.status import STATUS_LIMIT, cmd_status
from kugetsu_tui.commands.terminal import cmd_attach, cmd_notify, cmd_send
from kugetsu_tui.engine.config.kinds import ATTEMPTS, CAP, PRIORITY, ROW_ID, TIMEOUT, Whole
from kugetsu_tui.engine.intake import parse_task_id
from kugetsu_tui.engine.model import State
from kugetsu_tui.engine.store import disk_full
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.errors import UsageError


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
    add.add_argument(
        "--force", action="store_true", help="queue it even if the agent's program is not on PATH"
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
            action.add_argument("--prompt", metavar="TEXT", help="the task's new prompt (instead of its own)")
        if name == "cancel":
            action.add_argument(
                "--children",
                action="store_true",
                help="also the tasks they added (queued or live), and theirs",
            )
        action.set_defaults(func=task_action(name))

    priority = sub.add_parser("priority", parents=[common], help="give queued tasks a new priority")
    priority.add_argument("priority", type=bounded(PRIORITY), metavar="N", help="higher runs first")
    priority.add_argument("ids", nargs="+", type=task_id, metavar="ID")
    priority.set_defaults(func=cmd_priority)

    cap = sub.add_parser("cap", parents=[common], help="show or set how many agents may be live")
    cap.add_argument("cap", nargs="?", type=bounded(CAP), metavar="N")
    cap.add_argument("--accept", action="store_true", help="set the cap to the advisor's suggestion")
    cap.set_defaults(func=cmd_cap)


def _inspect_commands(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    logs = sub.add_parser("logs", parents=[common], help="a task's output")
    logs.add_argument("id", type=task_id, metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the task settles")
    logs.set_defaults(func=cmd_logs)

    agents = sub.add_parser("agents", parents=[common], help="the agents: found on PATH, prompt, output")
    agents.add_argument("--versions", action="store_true", help="ask each installed one its --version")
    agents.add_argument("--json", action="store_true", help="one JSON object for scripts")
    agents.set_defaults(func=cmd_agents)

    events = sub.add_parser("events", parents=[common], help="the event log as JSON lines")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    events.add_argument("--since", type=integer, default=0, metavar="ID", help="only events after this id")
    events.add_argument("--task", type=task_id, metavar="ID", help="only this task's events")
    events.add_argument("--type", action="append", metavar="TYPE", help="only this event type (repeatable)")
    events.set_defaults(func=cmd_events)

    attach = sub.add_parser("attach", parents=[common], help="step into a terminal agent (tmux)")
    attach.add_argument("id", type=task_id, metavar="ID")
    attach.set_defaults(func=cmd_attach)
    send = sub.add_parser("send", parents=[common], help="type a line into a terminal agent")
    send.add_argument("id", type=task_id, metavar="ID")
    send.add_argument("text", metavar="TEXT")
    send.set_defaults(func=cmd_send)
    notify = sub.add_parser("notify", parents=[common], help="from inside an agent: it needs a person")
    notify.add_argument("message", nargs="?", default="", metavar="MESSAGE")
    notify.add_argument("--task", type=task_id, metavar="ID", help="the task (default: the calling agent's)")
    notify.add_argument("--clear", action="store_true", help="it no longer needs a person")
    notify.add_argument(
        "--hook",
        action="store_true",
        help="MESSAGE (or stdin) is a Claude Code hook's or codex notify's JSON: raise or clear by it",
    )
    notify.set_defaults(func=cmd_notify)

    mcp = sub.add_parser("mcp", parents=[common], help="serve planner agents over MCP (stdio)")
    mcp.set_defaults(func=cmd_mcp)

    review.register(sub, common, task_id=task_id, duration=duration)

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
