"""The keys, what the states mean, and where things are."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from kugetsu_tui.engine.model import State
from kugetsu_tui.present import STATE_SYMBOL
from kugetsu_tui.tui import look

KEYS: tuple[tuple[str, str], ...] = (
    ("p", "pause / resume the selected task's whole process tree"),
    ("c", "cancel the selected task (asks first)"),
    ("r", "requeue a failed, cancelled or expired task"),
    ("h", "hold / release a queued task"),
    ("+ -", "raise / lower the cap (saved to config.toml)"),
    ("a", "accept the suggested cap"),
    ("n", "new task"),
    ("enter", "details: full prompt, command line, worktree, timings, events"),
    ("l", "focus the log of the selected task"),
    ("tab", "next pane"),
    ("f", "Failed pane: all / failed / cancelled / expired"),
    ("/", "filter every pane by text (escape clears)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit (agents keep running and are picked up again)"),
)

STATES: tuple[tuple[State, str], ...] = (
    (State.QUEUED, "waiting for a slot; the Queued pane says why"),
    (State.STARTING, "admitted; its worktree is being made"),
    (State.RUNNING, "the agent runs"),
    (State.PAUSED, "stopped (SIGSTOP) until resumed; still holds its slot"),
    (State.SUCCEEDED, "exited 0"),
    (State.FAILED, "failed its last attempt"),
    (State.CANCELLED, "cancelled by you"),
    (State.EXPIRED, "waited longer than expire_after"),
)


def help_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    for state, what in STATES:
        table.add_row(look.state_text(state), Text(what))
    table.add_row(
        Text(f"{STATE_SYMBOL[State.PAUSED]} held", style=look.HELD_STYLE), "queued but parked; h releases it"
    )
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "close"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Label("kugetsu · keys", classes="dialog-title")
            yield Static(help_table())
            yield Label("escape closes", classes="dialog-hint")
