"""The header: the machine (CPU per core, memory, load), live n/cap, the suggested cap,
the supervisor's state and how many tasks are done."""

from __future__ import annotations

import os
import time

from rich.text import Span, Text
from textual.widgets import Static

from kugetsu_tui.engine.model import State
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.present import BROWSER_ENV, STATE_SYMBOL, node_line
from kugetsu_tui.tui import look
from kugetsu_tui.tui.board import Board
from kugetsu_tui.tui.readings import MachineReading

NODE_LINES = 4  # node lines in the header at most; status lists them all


def machine_line(reading: MachineReading | None) -> Text:
    line = Text()
    if reading is None:
        line.append("CPU ?  mem ?  load ?", "bright_black")
        return line
    cpu_style = "red" if reading.cpu_percent >= 90 else "yellow" if reading.cpu_percent >= 70 else ""
    line.append("CPU ", "bold")
    line.append(f"{reading.cpu_percent:3.0f}% ", cpu_style)
    line.append(look.bars(reading.per_cpu, 24), "cyan")
    line.append("  mem ", "bold")
    share = reading.mem_used / reading.mem_total * 100 if reading.mem_total else 0.0
    mem_style = "red" if share >= 90 else "yellow" if share >= 75 else ""
    line.append(f"{look.size(reading.mem_used)}/{look.size(reading.mem_total)}", mem_style)
    line.append(f" ({look.size(reading.mem_available)} free)", "bright_black")
    line.append("  load ", "bold")
    if reading.load is None:
        line.append("?")
    else:
        line.append(" ".join(f"{v:.2f}" for v in reading.load))
    return line


def queue_line(board: Board) -> Text:
    line = Text()
    sup = board.supervisor
    line.append("● " if sup.running else "○ ", "green" if sup.running else "red")
    line.append(sup.describe(), "" if sup.running else "red")
    line.append("   live ", "bold")
    full = board.live >= board.cap
    line.append(f"{board.live}/{board.cap}", "yellow" if full else "green")
    suggested = sup.suggested_cap
    scope = " for the cluster" if sup.cluster else ""
    if suggested is not None and suggested != board.cap:
        # Only in suggest mode is the suggestion waiting for a person; in fixed mode a dim
        # note, in auto mode the advisor applies it itself.
        if sup.cap_mode == "suggest":
            line.append(f"  suggested {suggested}{scope} — a to apply", "cyan")
        elif sup.cap_mode == "fixed":
            line.append(f"  (advisor: {suggested}{scope})", "bright_black")
    if sup.cluster:
        line.append(f"  ⎈ {sup.cluster}", "bright_black")
    # Queued and failed counts head their own panes; only the done count lives here.
    done = board.counts.get(State.SUCCEEDED, 0)
    line.append(f"  {STATE_SYMBOL[State.SUCCEEDED]} ", look.STATE_STYLE[State.SUCCEEDED])
    line.append(f"{done} done")
    # Last, so that on a narrow terminal it is what gets cut, not the counts.
    for agent, until in sorted(sup.cooldowns.items()):
        if until > board.now:
            line.append(
                f"  ❄ {printable(agent)} until {time.strftime('%H:%M:%S', time.localtime(until))}", "cyan"
            )
    for agent, slots in sorted(sup.slots.items()):  # held back after a rate limit
        line.append(f"  ⇣ {printable(agent)} {slots.effective}/{slots.max} slots", "yellow")
    return line


class MachineBar(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.reading: MachineReading | None = None
        self._shown: tuple[str, list[Span]] | None = None
        self._height = 2
        self.browser = os.environ.get(BROWSER_ENV)

    def show(self, board: Board, reading: MachineReading | None) -> None:
        if reading is not None:
            self.reading = reading
        text = queue_line(board)
        if self.browser is not None:
            text.append(f"  ◉ browser {one_line(self.browser)}", "bold magenta")
        text.append("\n")
        text.append_text(machine_line(self.reading))
        for note in (board.supervisor.config_error, board.supervisor.admission_blocked):
            if note:
                text.append(f"  ⚠ {one_line(note)}", "bold yellow")
        nodes = board.supervisor.nodes
        for node in nodes[:NODE_LINES]:  # agents on a Ray cluster: a line per node
            text.append(f"\n⎈ {node_line(node)}", "bright_black")
        if len(nodes) > NODE_LINES:
            text.append(f"\n⎈ … and {len(nodes) - NODE_LINES} more nodes (kugetsu status)", "bright_black")
        height = 2 + min(len(nodes), NODE_LINES + 1)
        key = (text.plain, list(text.spans))
        if key != self._shown:  # re-render only when something visible changed
            self._shown = key
            # Its height changes only when nodes come or go: else no new layout of the screen.
            self.update(text, layout=height != self._height)
            if height != self._height:
                self._height = height
                self.styles.height = height
