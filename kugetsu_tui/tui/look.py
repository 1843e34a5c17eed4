"""How values read on the dashboard: state colours and symbols, sizes, percentages, ages.

Every state has a colour and a symbol (from `present.STATE_SYMBOL`, shared with the CLI),
so a state reads the same in every pane and still reads without colour (NO_COLOR).
User text (prompts, log lines) always becomes `Text`, never markup, and goes through
engine.text (`one_line`, `printable`) first: nothing from outside reaches the terminal raw.
"""

from __future__ import annotations

import time

from rich.text import Text

from kugetsu_tui.engine.model import State, Task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.present import STATE_SYMBOL, elapsed

STATE_STYLE: dict[State, str] = {
    State.QUEUED: "bright_black",
    State.STARTING: "cyan",
    State.RUNNING: "green",
    State.PAUSED: "yellow",
    State.SUCCEEDED: "bright_green",
    State.FAILED: "bold red",
    State.CANCELLED: "magenta",
    State.EXPIRED: "dark_orange",
}
HELD_STYLE = "blue"
UNKNOWN = "?"


def state_text(state: State, *, held: bool = False) -> Text:
    if held:
        return Text("‖ held", style=HELD_STYLE)
    return Text(f"{STATE_SYMBOL[state]} {state}", style=STATE_STYLE[state])


def plain(value: str, style: str = "") -> Text:
    """User text as a single line, cut with an ellipsis by the column it lands in."""
    return Text(one_line(value), style=style, no_wrap=True, overflow="ellipsis")


def prompt(task: Task) -> Text:
    """The prompt column: a task added from inside another task's run starts with its
    parent's id (`↳ 12`), so a planner's children read as its children."""
    if task.parent is None:
        return plain(task.prompt)
    text = Text.assemble((f"↳ {task.parent} ", "bright_black"), one_line(task.prompt))
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def right(value: str, style: str = "") -> Text:
    return Text(value, style=style, justify="right", no_wrap=True)


def size(nbytes: float | None) -> str:
    """1536 -> '1.5K', 157286400 -> '150M'; '?' for unknown."""
    if nbytes is None:
        return UNKNOWN
    value = float(nbytes)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return UNKNOWN


def percent(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.0f}%"


def age(seconds: float) -> str:
    """A coarse age for waiting tasks (it changes at most once a minute): <1m, 5m, 2h05m."""
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return elapsed(seconds)


def clock(ts: float | None) -> str:
    if ts is None:
        return UNKNOWN
    return time.strftime("%H:%M", time.localtime(ts))


def stamp(ts: float | None) -> str:
    if ts is None:
        return UNKNOWN
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


BARS = "▁▂▃▄▅▆▇█"


def bars(values: tuple[float, ...], limit: int = 32) -> str:
    """Per-core CPU as one block character each (at most `limit` cores, averaged in groups)."""
    if not values:
        return ""
    if len(values) > limit:
        step = -(-len(values) // limit)
        values = tuple(
            sum(values[i : i + step]) / len(values[i : i + step]) for i in range(0, len(values), step)
        )
    return "".join(BARS[min(int(v / 100 * len(BARS)), len(BARS) - 1)] for v in values)


def short_reason(reason: str | None) -> str:
    """'cap full (3/3 live)' -> 'cap full 3/3'; the detail view keeps the whole sentence."""
    if not reason:
        return ""
    if reason.startswith("cap full"):
        return reason.replace(" live)", "").replace("(", "")
    if reason.startswith("backoff until"):
        return reason.split(" (")[0]
    return reason.split(" (")[0]
