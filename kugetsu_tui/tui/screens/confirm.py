"""Questions that default to no: a yes/no (`y` confirms, `n` or escape backs out), and a
yes/no with one more way to say yes (`ChoiceScreen`: e.g. cancel a task and its children)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from kugetsu_tui.engine.text import printable


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "no", show=False),
    ]

    def __init__(self, question: str, detail: str = "", *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.yes_label = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Label(printable(self.question), classes="dialog-title", markup=False)
            if self.detail:
                yield Static(printable(self.detail, lines=True), classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", variant="primary", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ChoiceScreen(ModalScreen[str | None]):
    """Like ConfirmScreen, with a second yes: dismissed with "yes", "also" or None (no)."""

    BINDINGS = [
        Binding("a", "answer('also')", "also"),
        Binding("y", "answer('yes')", "yes"),
        Binding("n", "answer(None)", "no"),
        Binding("escape", "answer(None)", "no", show=False),
    ]

    def __init__(self, question: str, detail: str, *, also: str, yes: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.labels = {"also": also, "yes": yes}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Label(printable(self.question), classes="dialog-title", markup=False)
            yield Static(printable(self.detail, lines=True), classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.labels['also']} (a)", variant="error", id="also", compact=True)
                yield Button(f"{self.labels['yes']} (y)", variant="warning", id="yes", compact=True)
                yield Button("No (n)", variant="primary", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in self.labels else None)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
