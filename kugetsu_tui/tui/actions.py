"""The dashboard's actions: one table of what each key is and where it applies.

`ACTIONS` is the only place a key of the main screen is described: the screen's
bindings (and so the footer), the help screen and the command palette are all made from
it. What each action does lives in `tui/handlers/` (queue, cap, review, view); every one
that changes the queue ends in one call to the engine's `Control`, the same call the CLI
makes (through `KugetsuApp.act`). Dialog keys (y/n, escape in a form) belong to their
dialogs, not here.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding, BindingType

from kugetsu_tui.tui.handlers.cap import accept_cap, cap_down, cap_up
from kugetsu_tui.tui.handlers.marks import toggle_mark
from kugetsu_tui.tui.handlers.queue import (
    cancel_task,
    hold_release,
    new_task,
    pause_resume,
    requeue,
    set_priority,
)
from kugetsu_tui.tui.handlers.review import discard_task, merge_task, open_done, show_diff
from kugetsu_tui.tui.handlers.terminal import attach, editor, open_task, shell
from kugetsu_tui.tui.handlers.view import (
    clear_filter,
    cycle_failed_kind,
    focus_log,
    full_log,
    open_filter,
    quit_dashboard,
    show_help,
)

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

Handler = Callable[["KugetsuApp"], Awaitable[None] | None]

CAP_KEYS = Binding.Group("cap", compact=True)

# Where the selection must be for an action to do something (an action applies anywhere
# else too, and then says why it does nothing).
ACTIVE, QUEUED, FAILED, LOG = "active", "queued", "failed", "log"
DONE, DIFF = "done", "diff"  # the Done view and the diff screen, one key away
TASK_PANES = frozenset({ACTIVE, QUEUED, FAILED})
ANYWHERE: frozenset[str] = frozenset()

# How a few Textual key names read on screen.
_SHOWN_KEY = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-"}


@dataclass(frozen=True, slots=True)
class Action:
    id: str  # the binding's id, and what the screen dispatches on
    keys: str  # Textual key names, comma-separated
    label: str  # the footer's word
    help: str  # the help screen's line; "" when `help_in` names the row that tells it
    title: str  # the command palette's name for it
    palette: str  # the command palette's line under the name
    run: Handler
    panes: frozenset[str] = ANYWHERE
    confirms: bool = False  # asks before it changes anything
    footer: bool = True
    key_display: str | None = None  # passed to the binding (the footer shows it)
    help_keys: str | None = None  # the help screen's key column, when not just the key
    help_in: str | None = None  # the action whose help row covers this one
    group: Binding.Group | None = None

    @property
    def shown_key(self) -> str:
        key = self.keys.split(",")[0]
        return self.key_display or _SHOWN_KEY.get(key, key)

    def binding(self, *, show: bool | None = None) -> Binding:
        return Binding(
            self.keys,
            f"do({self.id!r})",
            self.label,
            show=self.footer if show is None else show,
            key_display=self.key_display,
            id=self.id,
            group=self.group,
        )


# --- the table ----------------------------------------------------------------------------

# Each row: id, keys, footer label, help line, palette title, palette line, handler; then
# where it applies and how it shows. The order is the footer's and the help screen's.
ACTIONS: tuple[Action, ...] = (
    Action(
        "pause", "p", "pause", "pause / resume the selected task's whole process tree",
        "Pause / resume task", "pause or resume the selected task", pause_resume,
        panes=frozenset({ACTIVE}),
    ),
    Action(
        "cancel", "c", "cancel", "cancel the selected task (asks first)",
        "Cancel task", "cancel the selected task, after asking", cancel_task,
        panes=frozenset({ACTIVE, QUEUED}), confirms=True,
    ),
    Action(
        "requeue", "r", "requeue",
        "requeue a failed, cancelled or expired task: edit its prompt, add a note",
        "Requeue task", "queue a failed, cancelled or expired task again, with a note", requeue,
        panes=frozenset({FAILED}),
    ),
    Action(
        "hold", "h", "hold", "hold / release a queued task",
        "Hold / release task", "park a queued task or let it run", hold_release,
        panes=frozenset({QUEUED}),
    ),
    Action(
        "priority", "P", "priority", "set a queued task's priority (higher runs first)",
        "Set priority", "give the selected queued task a new priority", set_priority,
        panes=frozenset({QUEUED}), footer=False,
    ),
    Action("new", "n", "new", "new task", "New task", "queue a task", new_task),
    Action(
        "cap_up", "plus", "cap+", "raise / lower the cap (saved to config.toml)",
        "Raise cap", "one more agent may run", cap_up,
        key_display="+", help_keys="+ -", group=CAP_KEYS,
    ),
    Action(
        "cap_down", "minus", "cap-", "", "Lower cap", "one fewer agent may run", cap_down,
        key_display="-", help_in="cap_up", group=CAP_KEYS,
    ),
    Action(
        "accept_cap", "a", "accept cap", "accept the suggested cap",
        "Accept suggested cap", "set the cap to the suggestion", accept_cap, footer=False,
    ),
    Action(
        "details", "enter", "details",
        "details: prompt, command, worktree, timings, events; a live terminal task: attach",
        "Task details", "prompt, command, worktree, timings, events", open_task,
        panes=TASK_PANES, footer=False,
    ),
    Action(
        "attach", "A", "attach", "attach to a live terminal task's session (tmux's prefix + d detaches)",
        "Attach to terminal", "step into the selected terminal agent's session", attach,
        panes=frozenset({ACTIVE}),
    ),
    Action(
        "mark", "space", "mark",
        "mark / unmark a task; c r m x then act on every marked task (escape unmarks all)",
        "Mark task", "mark the selected task to act on several at once", toggle_mark,
        panes=frozenset({*TASK_PANES, DONE}), footer=False,
    ),
    Action(
        "failed_kind", "f", "kinds", "Failed pane: all / failed / cancelled / expired",
        "Failed pane kinds", "all / failed / cancelled / expired",
        cycle_failed_kind, panes=frozenset({FAILED}),
    ),
    Action(
        "done", "v", "done", "the Done view: finished tasks, what they changed, merged or not",
        "Done view", "succeeded tasks with their changes and review state", open_done, footer=False,
    ),
    Action(
        "diff", "d", "diff", "the selected task's diff against where it started (n / p: files)",
        "Show diff", "what the selected task changed", show_diff,
        panes=frozenset({FAILED, DONE}),
    ),
    Action(
        "merge", "m", "merge", "merge the selected task's branch where it started (asks first)",
        "Merge task", "land the selected task's work, after asking", merge_task,
        panes=frozenset({FAILED, DONE, DIFF}), confirms=True, footer=False,
    ),
    Action(
        "discard", "x", "discard", "discard the selected task's worktree and branch (asks first)",
        "Discard task", "remove the selected task's work, after asking", discard_task,
        panes=frozenset({FAILED, DONE, DIFF}), confirms=True, footer=False,
    ),
    Action(
        "shell", "o", "shell", "a shell in the selected task's worktree (exit to come back)",
        "Shell in worktree", "open $SHELL in the selected task's worktree", shell,
        panes=frozenset({ACTIVE, FAILED, DONE, DIFF}), footer=False,
    ),
    Action(
        "editor", "e", "editor", "open the selected task's worktree in $EDITOR",
        "Edit worktree", "open the selected task's worktree in $EDITOR", editor,
        panes=frozenset({ACTIVE, FAILED, DONE, DIFF}), footer=False,
    ),
    Action(
        "focus_log", "l", "log", "focus the log of the selected task",
        "Focus log", "scroll the selected task's output", focus_log,
        panes=TASK_PANES, footer=False,
    ),
    Action(
        "full_log", "L", "full log", "the selected task's log full screen (/ search, n next)",
        "Full log", "the selected task's whole log, with search", full_log,
        panes=TASK_PANES, footer=False,
    ),
    Action(
        "filter", "slash", "filter", "filter every pane by text (escape clears)",
        "Filter", "filter every pane by text", open_filter,
    ),
    Action(
        "clear_filter", "escape", "clear filter", "", "Clear filter", "show every task again",
        clear_filter, footer=False, help_in="filter",
    ),
    Action(
        "help", "question_mark", "help", "this help",
        "Keys", "every key and what the states mean", show_help,
    ),
    Action(
        "quit", "q", "quit", "quit (agents keep running and are picked up again)",
        "Quit", "quit; live agents keep running and are picked up again", quit_dashboard,
        confirms=True,
    ),
)  # fmt: skip
BY_ID = {action.id: action for action in ACTIONS}

# Keys of Textual itself that the help screen tells too, each before the action named.
TEXTUAL_KEYS = {
    "failed_kind": ("tab", "next pane"),
    "help": ("ctrl+p", "command palette: every action by name"),
}


async def run(action_id: str, app: KugetsuApp) -> None:
    done = BY_ID[action_id].run(app)
    if inspect.isawaitable(done):
        await done


def bindings() -> list[BindingType]:
    return [action.binding() for action in ACTIONS]


def footer_actions(pane: str | None) -> frozenset[str]:
    """The footer's keys with the focus in `pane`: those that act there, and those that act
    anywhere (as binding actions, `do('id')`)."""
    return frozenset(
        f"do({action.id!r})"
        for action in ACTIONS
        if action.footer and (not action.panes or pane in action.panes)
    )


def screen_bindings(pane: str) -> list[Binding]:
    """The keys of a screen of its own (the Done view, a diff): the actions that apply
    there, each in that screen's footer."""
    return [action.binding(show=True) for action in ACTIONS if pane in action.panes]


def help_rows() -> Iterator[tuple[str, str]]:
    """(keys, what they do) for the help screen, in the table's order."""
    for action in ACTIONS:
        if action.id in TEXTUAL_KEYS:
            yield TEXTUAL_KEYS[action.id]
        if action.help:
            yield action.help_keys or action.shown_key, action.help


def palette_commands(app: KugetsuApp) -> Iterator[SystemCommand]:
    for action in ACTIONS:
        yield SystemCommand(
            action.title, f"{action.palette} ({action.shown_key})", partial(run, action.id, app)
        )
