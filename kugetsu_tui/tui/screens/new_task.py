"""The new-task form (`n`): prompt, repo, agent and priority, as `kugetsu add` takes them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from kugetsu_tui.engine.intake import Intake
from kugetsu_tui.engine.model import NewTask
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError


class NewTaskScreen(ModalScreen[NewTask | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "cancel"),
        Binding("ctrl+s", "submit", "add", show=False),
    ]

    def __init__(self, *, agents: Sequence[str], agent: str, repo: str, intake: Intake) -> None:
        super().__init__(classes="dialog-screen")
        self.agents = list(agents)
        self.agent = agent
        self.repo = repo
        self.intake = intake

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="new-task"):
            yield Label("New task", classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("Prompt", classes="form-label")
                yield Input(placeholder="what the agent should do", id="prompt", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Repository", classes="form-label")
                yield Input(
                    value=printable(self.repo),
                    placeholder="path to a git repository",
                    id="repo",
                    compact=True,
                )
            with Horizontal(classes="form-row"):
                yield Label("Agent", classes="form-label")
                yield Select(
                    [(printable(name), name) for name in self.agents],
                    value=self.agent,
                    allow_blank=False,
                    id="agent",
                    compact=True,
                )
            with Horizontal(classes="form-row"):
                yield Label("Priority", classes="form-label")
                yield Input(value="0", type="integer", id="priority", compact=True)
            yield Label("", id="form-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add (enter)", variant="primary", id="add", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_submit(self) -> None:
        try:
            task = self.read_form()
        except UsageError as err:
            self.query_one("#form-error", Label).update(Text(printable(str(err))))
            return
        self.dismiss(task)

    def read_form(self) -> NewTask:
        """The form as a NewTask, checked by the same intake as `kugetsu add`."""
        spec: dict[str, object] = {
            "prompt": self.query_one("#prompt", Input).value,
            "repo": self.query_one("#repo", Input).value.strip() or None,
            "agent": self.query_one("#agent", Select).value,
        }
        priority = self.query_one("#priority", Input).value.strip()
        if priority:
            spec["priority"] = priority
        return self.intake.task(spec, typed=False)
