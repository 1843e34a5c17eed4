"""The keys (given by actions.ACTIONS) and what the states mean."""

from __future__ import annotations

from collections.abc import Iterable

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


def help_table(keys: Iterable[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in keys:
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

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.keys = tuple(keys)  # (keys, what they do), made from actions.ACTIONS

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Label("kugetsu · keys", classes="dialog-title")
            yield Static(help_table(self.keys))
            yield Label("escape closes", classes="dialog-hint")
