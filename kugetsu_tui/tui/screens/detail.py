"""Everything about one task (`enter`): full prompt, command line, worktree, timings, events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from kugetsu_tui.engine.commands import AgentCommand
from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.present import elapsed
from kugetsu_tui.tui import look
from kugetsu_tui.tui.widgets.failed_pane import exit_text

EVENT_KEYS = ("reason", "exit_code", "retry_in", "cap", "pid", "argv0")


def event_row(event: Event) -> tuple[Text, Text, Text]:
    kind = event.type.removeprefix("task_")
    data = event.data
    details = [f"{key} {one_line(str(data[key]))}" for key in EVENT_KEYS if data.get(key) is not None]
    if "attempts" in data and kind in ("dequeued", "started", "error", "retrying"):
        details.insert(0, f"attempt {data['attempts']}/{data.get('max_attempts', '?')}")
    return Text(look.stamp(event.ts)), Text(kind, style="bold"), Text(", ".join(details))


def detail_table(
    task: Task,
    *,
    command: AgentCommand | None,
    log_path: Path,
    wait_reason: str | None,
    now: float,
    children: Sequence[Task] = (),
) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = (*_what_rows(task, command, wait_reason), *_family_rows(task, children), *_when_rows(task, now))
    for label, text in rows:
        table.add_row(label, text)
    table.add_row("usage", Text(usage_text(task)))
    table.add_row("log", Text(printable(str(log_path))))
    return table


def _what_rows(task: Task, command: AgentCommand | None, wait_reason: str | None) -> list[tuple[str, Text]]:
    """What the task is and where it runs (text from outside made printable)."""
    held = " (held)" if task.held else ""
    rows = [("state", Text.assemble(look.state_text(task.state), held))]
    if wait_reason:
        rows.append(("waits for", Text(printable(wait_reason))))
    if task.reason:
        rows.append(("reason", Text(printable(task.reason, lines=True))))
    worktree = task.worktree or ("- (runs in the repo)" if task.no_worktree else "-")
    shell_line = printable(command.shell_line()) if command else "? (agent not in the config)"
    rows += [
        ("agent", Text(printable(task.agent))),
        ("command", Text(shell_line)),
        ("repo", Text(printable(task.repo or "-"))),
        ("worktree", Text(printable(worktree))),
        ("branch", Text(printable(task.branch or "-"))),
        ("priority", Text(str(task.priority))),
        ("attempts", Text(f"{task.attempts} of {task.max_attempts}")),
        ("exit", Text(exit_text(task.exit_code))),
        ("pid", Text(str(task.pid) if task.pid else "-")),
    ]
    return rows


def _family_rows(task: Task, children: Sequence[Task]) -> list[tuple[str, Text]]:
    """Lineage: the task whose run added this one, and the tasks this one's run added."""
    rows = []
    if task.parent is not None:
        rows.append(("parent", Text(f"task {task.parent}")))
    if children:
        kids = [Text.assemble(f"{t.id} ", look.state_text(t.state)) for t in children]
        rows.append(("children", Text(", ").join(kids)))
    return rows


def _when_rows(task: Task, now: float) -> list[tuple[str, Text]]:
    """Its times, and how long the attempt ran (or runs)."""
    rows = [("created", Text(look.stamp(task.created_at))), ("queued", Text(look.stamp(task.queued_at)))]
    if task.not_before:
        rows.append(("not before", Text(look.stamp(task.not_before))))
    rows.append(("started", Text(look.stamp(task.started_at) if task.started_at else "-")))
    rows.append(("ended", Text(look.stamp(task.ended_at) if task.ended_at else "-")))
    if task.started_at:
        end = task.ended_at if task.ended_at and task.ended_at >= task.started_at else now
        rows.append(("ran for", Text(elapsed(end - task.started_at))))
    rows.append(("timeout", Text(elapsed(task.timeout) if task.timeout else "none")))
    return rows


def usage_text(task: Task) -> str:
    """The supervisor's metering of the attempt; unknown where nothing was measured."""
    if task.peak_rss is None:
        return "not measured"
    parts = []
    if task.is_live:
        parts.append(f"CPU {look.percent(task.cpu_percent)}, RSS {look.size(task.rss)}")
    parts.append(f"peak RSS {look.size(task.peak_rss)}")
    if task.cpu_seconds is not None:
        parts.append(f"{task.cpu_seconds:.1f} CPU seconds")
    if task.is_live and task.procs is not None:
        parts.append(f"{task.procs} processes")
    return " · ".join(parts)


def events_table(events: Sequence[Event]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bright_black", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for event in events:
        table.add_row(*event_row(event))
    return table


class DetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "close"),
    ]

    def __init__(
        self,
        task: Task,
        *,
        events: Sequence[Event],
        command: AgentCommand | None,
        log_path: Path,
        wait_reason: str | None,
        now: float,
        children: Sequence[Task] = (),
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.task_shown = task
        self.body = Group(
            Text("Prompt", style="bold underline"),
            Text(printable(task.prompt, lines=True)),
            Text(""),
            detail_table(
                task, command=command, log_path=log_path, wait_reason=wait_reason, now=now, children=children
            ),
            Text(""),
            Text(f"Events ({len(events)})", style="bold underline"),
            events_table(events),
        )

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="detail"):
            yield Label(f"Task {self.task_shown.id}", classes="dialog-title")
            yield Static(self.body)
            yield Label("escape closes", classes="dialog-hint")
