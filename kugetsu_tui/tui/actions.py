"""The dashboard's actions: one table, and what each action does.

`ACTIONS` is the only place a key of the main screen is described: the screen's
bindings (and so the footer), the help screen and the command palette are all made from
it. Every action that changes the queue ends in one call to the engine's `Control`, the
same call the CLI makes (through `KugetsuApp.act`); the others only change what is shown.
Dialog keys (y/n, escape in a form) belong to their dialogs, not here.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding, BindingType

from kugetsu_tui.engine.capacity import why_far_below
from kugetsu_tui.engine.commands import build_command, working_dir
from kugetsu_tui.engine.intake import Intake
from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.model import CapMode, NewTask, State, Task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError
from kugetsu_tui.present import agent_to_offer
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.detail import DetailScreen
from kugetsu_tui.tui.screens.help import HelpScreen
from kugetsu_tui.tui.screens.new_task import NewTaskScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp

Handler = Callable[["KugetsuApp"], Awaitable[None] | None]

DETAIL_EVENTS = 200  # the detail view shows this many of a task's latest events
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


# --- what the actions do ------------------------------------------------------------------


def selected_task(app: KugetsuApp) -> Task | None:
    """The task the person sees selected: on the Done view or a diff, that screen's."""
    task_id = getattr(app.screen, "selected_task_id", app.dashboard.selected_task_id)
    return app.store.get(task_id) if task_id is not None else None


def need_task(app: KugetsuApp) -> Task | None:
    task = selected_task(app)
    if task is None:
        app.notify("no task selected", severity="warning", timeout=3)
    return task


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def pause_resume(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    if task.state is State.PAUSED:
        app.act("resume", lambda: app.control.resume([task.id]))
    else:
        app.act("pause", lambda: app.control.pause([task.id]))


def cancel_task(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    if not (task.state is State.QUEUED or task.state.is_live):
        app.act("cancel", lambda: app.control.cancel([task.id]))  # says why not
        return

    def answered(yes: bool | None) -> None:
        if yes:
            app.act("cancel", lambda: app.control.cancel([task.id]))

    what = "end its agent (SIGTERM, then SIGKILL)" if task.state.is_live else "drop it from the queue"
    app.push_screen(
        ConfirmScreen(
            f"Cancel task {task.id}?",
            f"{short(one_line(task.prompt), 200)}\n\nThis will {what}.",
            yes="Cancel it",
        ),
        answered,
    )


def requeue(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is not None:
        app.act("requeue", lambda: app.control.requeue([task.id]))


def hold_release(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    if task.state is State.QUEUED and task.held:
        app.act("release", lambda: app.control.release([task.id]))
    else:
        app.act("hold", lambda: app.control.hold([task.id]))


def set_cap(app: KugetsuApp, cap: int) -> None:
    if app.supervisor_state().cap_mode == CapMode.AUTO:
        app.notify(
            "[capacity] mode is auto, so the advisor will keep setting the cap",
            severity="warning",
            timeout=5,
        )
    if app.act("cap", lambda: app.control.set_cap(cap)):
        app.reread_config()
        app.refresh_board()


def cap_up(app: KugetsuApp) -> None:
    set_cap(app, app.current_cap() + 1)


def cap_down(app: KugetsuApp) -> None:
    if app.current_cap() <= 1:
        app.notify("the cap is already 1", severity="warning", timeout=3)
        return
    set_cap(app, app.current_cap() - 1)


def accept_cap(app: KugetsuApp) -> None:
    suggested = app.supervisor_state().suggested_cap
    if suggested is None:
        app.notify("no suggested cap yet", severity="warning", timeout=3)
    elif suggested == app.current_cap():
        app.notify(f"the cap is already {suggested}", timeout=3)
    elif (why := why_far_below(suggested, app.current_cap())) is not None:
        # One key press must not take a cap of 50 to 1 unasked: say why, then ask.
        reason = app.supervisor_state().cap_reason or "no reason given"

        def answered(yes: bool | None) -> None:
            if yes:
                set_cap(app, suggested)

        app.push_screen(
            ConfirmScreen(
                f"Lower the cap from {app.current_cap()} to {suggested}?",
                f"{why}.\n\nWhy {suggested}: {one_line(reason)}",
                yes=f"Set cap {suggested}",
            ),
            answered,
        )
    else:
        set_cap(app, suggested)


def new_task(app: KugetsuApp) -> None:
    repo = app.last_repo or guess_repo(app)

    def added(new: NewTask | None) -> None:
        if new is None:
            return
        app.last_repo = new.repo or ""
        app.act(
            "add",
            lambda: [
                ActionResult(True, "queued", i)
                for i in app.control.add([new], max_queued=app.config.max_queued)
            ],
        )

    app.push_screen(
        NewTaskScreen(
            agents=sorted(app.config.agents),
            agent=agent_to_offer(app.config, app.find_agent),
            repo=repo,
            intake=Intake(app.config, app.store),
        ),
        added,
    )


def guess_repo(app: KugetsuApp) -> str:
    """The form's first guess: the repo of a task on the board, else where we were started."""
    board = app.board
    for group in (board.active, board.queued, board.failed):
        for task in group:
            if task.repo:
                return task.repo
    return os.getcwd()


def details(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    agent = app.config.agents.get(task.agent)
    command = None
    if agent is not None:
        command = build_command(agent, task, working_dir(task, app.home), app.home)
    events = app.store.events(task_id=task.id)[-DETAIL_EVENTS:]
    app.push_screen(
        DetailScreen(
            task,
            events=events,
            command=command,
            log_path=app.home.log_path(task.id),
            wait_reason=app.board.view.wait_reason.get(task.id),
            now=app.clock(),
        )
    )


def show_help(app: KugetsuApp) -> None:
    app.push_screen(HelpScreen(tuple(help_rows())))


async def quit_dashboard(app: KugetsuApp) -> None:
    """Quit, after asking when agents are live (they keep running either way)."""
    if app.quitting:
        return
    live = app.store.live_count()
    if not live:
        await app.shut_down()
        return
    if app.supervisor is not None:
        where = (
            "They keep running after you quit; the next supervisor (kugetsu, "
            "kugetsu run) finds them again and settles them."
        )
    elif app.elsewhere.pid:
        where = f"They keep running under the supervisor pid {app.elsewhere.pid}."
    else:
        where = "They keep running; the next supervisor finds them again."

    async def answered(yes: bool | None) -> None:
        if yes:
            await app.shut_down()

    agents = "agent is" if live == 1 else "agents are"
    app.push_screen(ConfirmScreen(f"Quit? {live} {agents} live.", where, yes="Quit"), answered)


def open_done(app: KugetsuApp) -> None:
    from kugetsu_tui.tui.screens.done import DoneScreen

    app.push_screen(DoneScreen())


def show_diff(app: KugetsuApp) -> None:
    from kugetsu_tui.engine import review
    from kugetsu_tui.tui.screens.diff import DiffScreen

    task = need_task(app)
    if task is None:
        return
    try:
        text = review.diff(task)
    except (UsageError, review.ReviewError) as err:
        app.notify(str(err), title="diff", severity="warning")
        return
    app.push_screen(DiffScreen(task, review.split_diff(text), review.base_of(task)))


def merge_task(app: KugetsuApp) -> None:
    from kugetsu_tui.engine import review

    task = need_task(app)
    if task is None:
        return
    base = review.base_of(task) if task.repo and not task.no_worktree else None
    target = base.branch if base is not None else None
    if not task.state.is_settled or target is None or not task.branch:
        app.act("merge", lambda: app.control.merge(task.id))  # says why not
        return

    def answered(yes: bool | None) -> None:
        if yes and acted(app, "merge", lambda: [app.control.merge(task.id)]):
            close_diff(app, task.id)

    app.push_screen(
        ConfirmScreen(
            f"Merge task {task.id} into {target}?",
            f"{short(one_line(task.prompt), 200)}\n\nStrategy: merge (a merge commit of "
            f"{task.branch} on {target}). Then its worktree and branch are removed.",
            yes="Merge",
        ),
        answered,
    )


def acted(app: KugetsuApp, what: str, call: Callable[[], list[ActionResult]]) -> bool:
    """app.act, and whether every outcome was done (not refused, no conflict)."""
    outcomes: list[ActionResult] = []

    def run_call() -> list[ActionResult]:
        outcomes.extend(call())
        return outcomes

    return app.act(what, run_call) and all(outcome.ok for outcome in outcomes)


def close_diff(app: KugetsuApp, task_id: int) -> None:
    """Back from the diff of a task whose work was just merged or discarded."""
    from kugetsu_tui.tui.screens.diff import DiffScreen

    if isinstance(app.screen, DiffScreen) and app.screen.selected_task_id == task_id:
        app.pop_screen()


def discard_task(app: KugetsuApp) -> None:
    task = need_task(app)
    if task is None:
        return
    if not task.state.is_settled:
        app.act("discard", lambda: app.control.discard([task.id]))  # says why not
        return

    def answered(yes: bool | None) -> None:
        if yes and acted(app, "discard", lambda: app.control.discard([task.id])):
            close_diff(app, task.id)

    gone = " and ".join(
        f"{what} {where}" for what, where in (("worktree", task.worktree), ("branch", task.branch)) if where
    )
    app.push_screen(
        ConfirmScreen(
            f"Discard task {task.id}?",
            f"{short(one_line(task.prompt), 200)}\n\nThis removes its {gone or 'leftovers'}, "
            "whatever is in them.",
            yes="Discard",
        ),
        answered,
    )


# The screen's own: they change only what is shown.
def focus_log(app: KugetsuApp) -> None:
    app.dashboard.focus_log()


def cycle_failed_kind(app: KugetsuApp) -> None:
    app.dashboard.cycle_failed_kind()


def open_filter(app: KugetsuApp) -> None:
    app.dashboard.open_filter()


def clear_filter(app: KugetsuApp) -> None:
    app.dashboard.clear_filter()


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
        "requeue", "r", "requeue", "requeue a failed, cancelled or expired task",
        "Requeue task", "queue a failed, cancelled or expired task again", requeue,
        panes=frozenset({FAILED}),
    ),
    Action(
        "hold", "h", "hold", "hold / release a queued task",
        "Hold / release task", "park a queued task or let it run", hold_release,
        panes=frozenset({QUEUED}),
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
        "details", "enter", "details", "details: full prompt, command line, worktree, timings, events",
        "Task details", "prompt, command, worktree, timings, events", details,
        panes=TASK_PANES, footer=False,
    ),
    Action(
        "focus_log", "l", "log", "focus the log of the selected task",
        "Focus log", "scroll the selected task's output", focus_log,
        panes=TASK_PANES, footer=False,
    ),
    Action(
        "failed_kind", "f", "kinds", "Failed pane: all / failed / cancelled / expired",
        "Failed pane kinds", "all / failed / cancelled / expired",
        cycle_failed_kind, panes=frozenset({FAILED}), footer=False,
    ),
    Action(
        "done", "v", "done", "the Done view: finished tasks, what they changed, merged or not",
        "Done view", "succeeded tasks with their changes and review state", open_done, footer=False,
    ),
    Action(
        "diff", "d", "diff", "the selected task's diff against where it started (n / p: files)",
        "Show diff", "what the selected task changed", show_diff,
        panes=frozenset({FAILED, DONE}), footer=False,
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
