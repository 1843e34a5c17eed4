"""Handlers that hand the person's terminal to another program and take it back: attach
to a terminal agent's tmux session (`A`, or enter on one), a shell in a task's worktree
(`o`) and $EDITOR on it (`e`).

The app suspends (Textual's `App.suspend`), the program runs in the foreground with the
terminal as it was before the dashboard started, and the dashboard comes back when it
exits (tmux: when the person detaches). The program is waited for in a thread, so a
supervisor hosted by the dashboard goes on admitting and reaping meanwhile; nothing is
drawn until the app resumes (a batch update is held open across the suspension). Where the app cannot suspend (a browser, a test's
headless driver) it says which command to run instead. What to run comes from `Control`,
as for `kugetsu attach N` and `kugetsu shell N`.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import SuspendNotSupported

from kugetsu_tui.engine.model import Task
from kugetsu_tui.errors import UsageError
from kugetsu_tui.tui.handlers.common import need_task
from kugetsu_tui.tui.handlers.view import details

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

# Inside tmux, a nested `tmux attach` refuses unless these are gone (`kugetsu attach` too).
NOT_PASSED = ("TMUX", "TMUX_PANE")


def is_terminal_task(app: KugetsuApp, task: Task) -> bool:
    """A live task of an agent that runs in a terminal (whether its session still is, the
    attach itself finds out)."""
    agent = app.config.agents.get(task.agent)
    return task.is_live and agent is not None and agent.terminal


async def run_outside(app: KugetsuApp, argv: list[str], what: str, *, cwd: Path | None = None) -> bool:
    """Run argv in the foreground with the app suspended; True if it ran."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    try:
        # The batch outlives the suspension: a repaint while suspended would write into
        # the program's screen (and the driver's writer is gone then).
        with app.batch_update(), app.suspend():
            await asyncio.to_thread(subprocess.run, argv, cwd=cwd, env=env, check=False)
    except SuspendNotSupported:
        where = f"cd {shlex.quote(str(cwd))} && " if cwd is not None else ""
        app.notify(f"the dashboard cannot hand over this terminal here; run: {where}{shlex.join(argv)}",
                   title=what, severity="warning", timeout=10)  # fmt: skip
        return False
    except OSError as err:
        app.notify(f"cannot run {argv[0]!r}: {err.strerror}", title=what, severity="error")
        return False
    finally:
        app.refresh_board()
    return True


async def attach(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    try:
        argv = app.control.attach_argv(task.id)
    except UsageError as err:
        app.notify(str(err), title="attach", severity="warning", timeout=5)
        return
    await run_outside(app, argv, "attach")


async def open_task(app: KugetsuApp) -> None:
    """enter: step into a live terminal task; any other task (or one whose terminal is not
    up yet) shows its details."""
    task = need_task(app)
    if task is None:
        return
    if is_terminal_task(app, task):
        try:
            argv = app.control.attach_argv(task.id)
        except UsageError:
            pass
        else:
            await run_outside(app, argv, "attach")
            return
    details(app)


async def shell(app: KugetsuApp) -> None:
    task = need_task(app)
    where = _work_dir(app, task, "shell")
    if task is None or where is None:
        return
    program = os.environ.get("SHELL") or "/bin/sh"
    await run_outside(app, [program], "shell", cwd=where)


async def editor(app: KugetsuApp) -> None:
    task = need_task(app)
    where = _work_dir(app, task, "editor")
    if task is None or where is None:
        return
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not command or not (argv := _split(command)):
        app.notify("set $EDITOR (or $VISUAL) to the editor to open worktrees in", title="editor",
                   severity="warning", timeout=5)  # fmt: skip
        return
    await run_outside(app, [*argv, str(where)], "editor", cwd=where)


def _work_dir(app: KugetsuApp, task: Task | None, what: str) -> Path | None:
    if task is None:
        return None
    try:
        return app.control.work_dir(task.id)
    except UsageError as err:
        app.notify(str(err), title=what, severity="warning", timeout=5)
        return None


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: take it as one program name
        return [command]
