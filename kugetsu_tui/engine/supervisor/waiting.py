"""Needs input: the supervisor's side of the flag on a live task that waits for a person.
On each usage sample it looks at the screens of terminal agents (and the logs of flagged
others): it raises the flag on a still screen that asks something and clears it once the
agent shows new output."""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import TYPE_CHECKING

from kugetsu_tui.engine import terminal
from kugetsu_tui.engine.model import State
from kugetsu_tui.engine.text import one_line

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


# Per supervisor: task -> (what was seen last sample, what was seen when its flag was raised).
# What is seen is a terminal agent's screen, or the size of another agent's log.
_SEEN: weakref.WeakKeyDictionary[Supervisor, dict[int, tuple[object, object]]] = weakref.WeakKeyDictionary()


def _look(sup: Supervisor, tasks: dict[int, bool]) -> dict[int, object]:
    """In a thread: each task's screen (terminal agents) or log size (others)."""
    seen: dict[int, object] = {}
    for task_id, is_terminal in tasks.items():
        if is_terminal:
            seen[task_id] = terminal.capture(sup.home.root, task_id)
        else:
            try:
                seen[task_id] = os.stat(sup.home.log_path(task_id)).st_size
            except OSError:
                seen[task_id] = None
    return seen


async def watch_for_input(sup: Supervisor) -> None:
    """Raise "needs input" on a terminal agent whose screen has not changed since the last
    sample and ends in a question; clear a raised flag once the agent shows new output."""
    running = {t.id: t for t in sup.store.live() if t.state is State.RUNNING}
    agents = sup.config.agents
    watched = {
        p.task_id: bool(agents.get(p.agent) and agents[p.agent].terminal)
        for p in sup.procs.values()
        if p.task_id in running and not p.exited and p.pid > 0
    }
    watched = {t: is_terminal for t, is_terminal in watched.items() if is_terminal or running[t].needs_input}
    memory = _SEEN.setdefault(sup, {})
    for gone in set(memory) - set(watched):
        del memory[gone]
    if not watched:
        return
    seen = await asyncio.to_thread(_look, sup, watched)
    now = sup.clock()
    for task_id, now_seen in seen.items():
        before, raised_at = memory.get(task_id, (None, None))
        task = sup.store.get(task_id)
        if task is None or task.state is not State.RUNNING:
            memory.pop(task_id, None)
            continue
        if task.needs_input is not None:
            if raised_at is None:
                raised_at = now_seen  # first seen flagged: output after this clears it
            elif now_seen != raised_at:
                sup.store.set_needs_input(task_id, None, now)
                raised_at = None
        else:
            raised_at = None
            question = terminal.prompt_line(now_seen) if isinstance(now_seen, str) else None
            if question and now_seen == before:
                note = one_line(question)[:200]
                if sup.store.set_needs_input(task_id, note, now, by="screen"):
                    raised_at = now_seen
        memory[task_id] = (now_seen, raised_at)
