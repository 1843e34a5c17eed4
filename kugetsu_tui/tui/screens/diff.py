"""A task's diff (`d`): the files it changed on the left, one file's unified diff on the
right, highlighted and scrollable; `n` / `p` move between files. `m` merges and `x`
discards the task shown (both ask first), through the same actions as everywhere else.

The diff is git's text made printable before Rich highlights it: nothing an agent wrote
into a file reaches the terminal as an escape sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.review import Base, FileDiff
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.tui import actions

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp


def file_label(diff: FileDiff) -> Text:
    return Text.assemble(
        (f"+{diff.added}", "green"), " ", (f"−{diff.removed}", "red"), " ", (printable(diff.path), "")
    )


def heading(task: Task, base: Base | None, files: list[FileDiff]) -> str:
    since = "its start"
    if base is not None:
        since = f"{base.branch or 'a detached commit'} at {base.commit[:10]}"
    added = sum(f.added for f in files)
    removed = sum(f.removed for f in files)
    count = (
        f"{len(files)} file{'' if len(files) == 1 else 's'} +{added} −{removed}" if files else "no changes"
    )
    branch = task.branch or "no branch"
    return one_line(f"Task {task.id} · {branch} against {since} · {count} · {task.prompt}")


class DiffScreen(Screen[None]):
    DEFAULT_CSS = """
    DiffScreen #diff-title { width: 1fr; height: 1; padding: 0 1; background: $panel; text-style: bold; }
    DiffScreen #diff-panes { height: 1fr; }
    DiffScreen #diff-files { width: 30%; max-width: 48; height: 1fr; border: none;
                             border-right: vkey $panel-lighten-2; }
    DiffScreen #diff-scroll { width: 1fr; height: 1fr; background: $surface; }
    DiffScreen #diff-body { width: auto; }
    """
    BINDINGS = [
        Binding("n", "file(1)", "next file"),
        Binding("p", "file(-1)", "previous file"),
        *actions.screen_bindings(actions.DIFF),
        Binding("escape,q", "app.pop_screen", "back"),
    ]

    def __init__(self, task: Task, files: list[FileDiff], base: Base | None) -> None:
        super().__init__()
        self.task_shown = task
        self.files = files
        self.heading = heading(task, base, files)
        self.current = 0
        self.file_list = OptionList(*(Option(file_label(f)) for f in files), id="diff-files")
        self.body = Static("", id="diff-body")

    @property
    def selected_task_id(self) -> int:
        return self.task_shown.id

    def compose(self) -> ComposeResult:
        yield Label(self.heading, id="diff-title", markup=False)
        with Horizontal(id="diff-panes"):
            yield self.file_list
            with VerticalScroll(id="diff-scroll"):
                yield self.body
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if self.files:
            self.file_list.highlighted = 0
        self.show_file(0)
        self.query_one("#diff-scroll").focus()

    def show_file(self, index: int) -> None:
        if not self.files:
            self.body.update(Text("no changes", style="bright_black"))
            return
        self.current = index
        diff = self.files[index]
        self.body.update(
            Syntax(printable(diff.text, lines=True), "diff", theme="ansi_dark", word_wrap=False, tab_size=4)
        )
        self.query_one("#diff-scroll", VerticalScroll).scroll_home(animate=False)
        if self.file_list.highlighted != index:
            self.file_list.highlighted = index

    def action_file(self, step: int) -> None:
        if self.files:
            self.show_file((self.current + step) % len(self.files))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index != self.current:
            self.show_file(event.option_index)

    async def action_do(self, action_id: str) -> None:
        await actions.run(action_id, cast("KugetsuApp", self.app))
