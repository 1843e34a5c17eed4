"""`kugetsu run --headless` and `kugetsu demo --headless`: the engine without a screen.

Owns the supervised run for CI and the lines it prints (one per event, or JSON lines).
Never imports Textual.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from kugetsu_tui.engine import budget
from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import EventType
from kugetsu_tui.engine.text import one_line, printable


def event_line(event: Event) -> str:
    """One human line per event, for `run --headless` without --json.

    Prompts, reasons, agent names and hook output are outside text: made printable."""
    data = event.data
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    kind = event.type.removeprefix("task_")
    if event.task_id is None or "agent" not in data:  # e.g. supervisor_started, task_adopted
        subject = "" if event.task_id is None else f"task {event.task_id}  "
        detail = ", ".join(f"{k} {v}" for k, v in data.items())
        return f"{stamp}  {kind:<10} {subject}{one_line(detail)}"
    prompt = one_line(str(data.get("prompt", "")))[:50]
    extra = ""
    if data.get("reason") and kind not in ("completed", "started", "dequeued"):
        extra = f"  ({one_line(str(data['reason']))})"
    attempt = f" {data.get('attempts')}/{data.get('max_attempts')}" if "attempts" in data else ""
    agent = printable(str(data["agent"]))
    return f"{stamp}  {kind:<10} task {event.task_id}{attempt} [{agent}] {prompt}{extra}"


def run_headless(
    home: Home, config: Config, *, forever: bool, as_json: bool, stop_agents: bool = False
) -> int:
    import asyncio

    from kugetsu_tui.engine.supervisor import Supervisor

    def show(events: list[Event]) -> None:
        # One write per batch of events, not one per line: a tick may settle and start many.
        lines = [
            event.to_line() if as_json else event_line(event)
            for event in events
            if as_json or event.type != EventType.TASK_DEQUEUED
        ]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    supervisor = Supervisor(home, config, forever=forever, on_events=show, stop_agents=stop_agents)
    code = asyncio.run(supervisor.run())
    spent = budget.exhausted(supervisor.spent[1], supervisor.config) if supervisor.spent else None
    # With --json, stdout stays the stream of events; what is left goes to stderr.
    print_left_waiting(home, sys.stderr if as_json else sys.stdout, budget_spent=spent)
    return code


def print_left_waiting(home: Home, out: TextIO, limit: int = 20, budget_spent: str | None = None) -> None:
    """After a run: the queued tasks nothing will start without a person, and why (all of
    them, when the run ended because the budget was spent)."""
    from kugetsu_tui.engine.store import Store

    store = Store(home.db_path)
    try:
        waiting = store.waiting_on_a_person()
        queued = store.runnable_count() if budget_spent else 0
    finally:
        store.close()
    if queued:
        out.write(
            f"left waiting: {queued} task{'s' if queued > 1 else ''}: {budget_spent} "
            "(raise [budget] in the config to go on)\n"
        )
        out.flush()
    if not waiting:
        return
    lines = [f"left waiting: {len(waiting)} task{'s' if len(waiting) > 1 else ''} that need a person"]
    lines += [f"  task {task_id}: {one_line(why)}" for task_id, why in list(waiting.items())[:limit]]
    if len(waiting) > limit:
        lines.append(f"  … and {len(waiting) - limit} more (kugetsu status)")
    out.write("\n".join(lines) + "\n")
    out.flush()
