"""`kugetsu run --headless` and `kugetsu demo --headless`: the engine without a screen.

Owns the supervised run for CI and the lines it prints (one per event, or JSON lines).
Never imports Textual.
"""

from __future__ import annotations

import sys
import time

from kugetsu_tui.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import Event
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
            if as_json or event.type != "task_dequeued"
        ]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    supervisor = Supervisor(home, config, forever=forever, on_events=show, stop_agents=stop_agents)
    return asyncio.run(supervisor.run())
