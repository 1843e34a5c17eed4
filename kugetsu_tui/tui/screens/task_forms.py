"""Small forms that change one task: requeue with an edited prompt and a note (`r`, like
`kugetsu requeue N --note`), and a new priority for a queued task (`P`).

Each form is handed a `send` that makes the Control call; a UsageError it raises (an empty
prompt, a priority out of bounds, a task that changed meanwhile) is shown in the form, which
stays open with what was typed. The form closes (True) once the call went through.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError


class _TaskForm(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape", "dismiss(False)", "cancel"),
        Binding("ctrl+s", "submit", "send", show=False),
    ]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_submit()
        else:
            self.dismiss(False)

    def action_submit(self) -> None:
        try:
            self.send_form()
        except UsageError as err:
            self.query_one("#form-error", Label).update(Text(printable(str(err))))
            return
        self.dismiss(True)

    def send_form(self) -> None:
        raise NotImplementedError

    def buttons(self, send: str) -> ComposeResult:
        yield Label("", id="form-error", classes="dialog-error")
        with Horizontal(classes="dialog-buttons"):
            yield Button(send, variant="primary", id="send", compact=True)
            yield Button("Cancel (esc)", id="cancel", compact=True)


class RequeueScreen(_TaskForm):
    """The task's prompt to edit, and a note for the next attempt (may stay empty)."""

    def __init__(self, task_id: int, prompt: str, send: Callable[[str, str], None]) -> None:
        super().__init__(classes="dialog-screen")
        self.task_id = task_id
        self.prompt = prompt
        self.send = send

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="requeue-form"):
            yield Label(f"Requeue task {self.task_id}", classes="dialog-title")
            yield Label("Prompt (edit freely; ctrl+s sends)", classes="form-label-wide")
            yield TextArea(printable(self.prompt, lines=True), id="requeue-prompt", soft_wrap=True)
            with Horizontal(classes="form-row"):
                yield Label("Note", classes="form-label")
                yield Input(
                    placeholder="for the next attempt, e.g. the tests still fail", id="note", compact=True
                )
            yield from self.buttons("Requeue (enter)")

    def on_mount(self) -> None:
        self.query_one("#note", Input).focus()

    def send_form(self) -> None:
        self.send(self.query_one("#requeue-prompt", TextArea).text, self.query_one("#note", Input).value)


class PriorityScreen(_TaskForm):
    """A queued task's new priority, as `kugetsu add --priority` takes it."""

    def __init__(self, task_id: int, priority: int, send: Callable[[str], None]) -> None:
        super().__init__(classes="dialog-screen")
        self.task_id = task_id
        self.priority = priority
        self.send = send

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="priority-form"):
            yield Label(f"Priority of task {self.task_id} (higher runs first)", classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("Priority", classes="form-label")
                yield Input(value=str(self.priority), id="new-priority", compact=True)
            yield from self.buttons("Set (enter)")

    def on_mount(self) -> None:
        self.query_one("#new-priority", Input).focus()

    def send_form(self) -> None:
        self.send(self.query_one("#new-priority", Input).value)
