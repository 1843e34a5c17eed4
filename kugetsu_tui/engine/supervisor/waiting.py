"""Needs input: the supervisor's side of the flag on a live task that waits for a person.

On each usage sample it looks at the screens of terminal agents (and the logs of flagged
others): a still screen that matches one of the agent's answer rules is answered (an
event and a line in the log say so); one that asks something and matches no rule raises
the flag; new output clears it. While a task waits, its stall clock stands still and,
where its agent says `timeout_counts_waiting = false`, so does its timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import weakref
from typing import TYPE_CHECKING

from kugetsu_tui.engine import runner, terminal
from kugetsu_tui.engine.model import EventType, State
from kugetsu_tui.engine.supervisor.attempt import Proc
from kugetsu_tui.engine.supervisor.deadlines import pause_timeout, resume_timeout
from kugetsu_tui.engine.text import one_line

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor

Seen = tuple[object, object, "float | None"]

# Per supervisor: task -> what was seen last sample, what was seen when its flag was
# raised, and since when (supervisor clock) it has looked the same. What is seen is a
# terminal agent's screen, or the size of another agent's log.
_SEEN: weakref.WeakKeyDictionary[Supervisor, dict[int, Seen]] = weakref.WeakKeyDictionary()
# Per supervisor: (task, attempt) -> answers given by each rule (its number, from 1),
# counted from the events when first needed, so a supervisor that restarts keeps the count.
_ANSWERED: weakref.WeakKeyDictionary[Supervisor, dict[tuple[int, int], dict[int, int]]] = (
    weakref.WeakKeyDictionary()
)


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
    """Answer by rule, raise or clear "needs input" on each running attempt watched (terminal
    agents, and flagged others); then hold the clocks of the tasks that wait."""
    procs, watched = _watched(sup)
    memory = _SEEN.setdefault(sup, {})
    for gone in set(memory) - set(watched):
        del memory[gone]
    answered = _ANSWERED.setdefault(sup, {})
    for old in {k for k in answered if k[0] not in procs or procs[k[0]].attempt != k[1]}:
        del answered[old]
    if watched:
        seen = await asyncio.to_thread(_look, sup, watched)
        for task_id, now_seen in seen.items():
            await _judge(sup, procs[task_id], now_seen, memory)
    hold_clocks(sup, sup.clock())


def _watched(sup: Supervisor) -> tuple[dict[int, Proc], dict[int, bool]]:
    """The running attempts here, by task; and of those, the ones to look at (terminal
    agents, and others whose flag is up), each with whether it is a terminal agent."""
    running = {t.id: t for t in sup.store.live() if t.state is State.RUNNING}
    procs = {p.task_id: p for p in sup.procs.values() if p.task_id in running and not p.exited and p.pid > 0}
    watched = {}
    for task_id, proc in procs.items():
        agent = sup.config.agents.get(proc.agent)
        is_terminal = agent is not None and agent.terminal
        if is_terminal or running[task_id].needs_input:
            watched[task_id] = is_terminal
    return procs, watched


async def _judge(sup: Supervisor, proc: Proc, now_seen: object, memory: dict[int, Seen]) -> None:
    task_id = proc.task_id
    before, raised_at, still_since = memory.get(task_id, (None, None, None))
    task = sup.store.get(task_id)
    if task is None or task.state is not State.RUNNING:
        memory.pop(task_id, None)
        return
    now = sup.clock()
    if now_seen != before or still_since is None:
        still_since = now
    agent = sup.config.agents.get(proc.agent)
    idle_after = agent.idle_after if agent is not None else 0.0
    if task.needs_input is not None:
        if raised_at is None:
            raised_at = now_seen  # first seen flagged: output after this clears it
        elif now_seen != raised_at:
            sup.store.set_needs_input(task_id, None, now, by="output")
            raised_at = None
    elif isinstance(now_seen, str) and now_seen == before and now - still_since >= idle_after:
        raised_at, answered = await _still_screen(sup, proc, now_seen, now)
        if answered:
            still_since = None  # the screen changes with the answer; unchanged, a rule may answer again
    memory[task_id] = (now_seen, raised_at, still_since)


async def _still_screen(sup: Supervisor, proc: Proc, screen: str, now: float) -> tuple[object, bool]:
    """A screen that stayed the same for idle_after: answered by a rule, or, if its last
    line asks something, the flag raised. (What the flag was raised on; whether a rule
    answered.)"""
    if await _answer_by_rule(sup, proc, screen):
        return None, True
    agent = sup.config.agents.get(proc.agent)
    question = terminal.prompt_line(screen, agent.prompts if agent is not None else ())
    if question and sup.store.set_needs_input(proc.task_id, one_line(question)[:200], now, by="screen"):
        return screen, False
    return None, False


async def _answer_by_rule(sup: Supervisor, proc: Proc, screen: str) -> bool:
    """Type the answer of the first of the agent's rules that matches the screen's last line
    (where a prompt waits: a prompt answered earlier, higher up, never matches again) and
    has answers left this attempt; True if one was sent."""
    agent = sup.config.agents.get(proc.agent)
    line = terminal.last_line(screen)
    if agent is None or not agent.answer or line is None:
        return False
    answered = _ANSWERED.setdefault(sup, {})
    used = answered.get((proc.task_id, proc.attempt))
    if used is None:
        used = answered[proc.task_id, proc.attempt] = _answers_given(sup, proc)
    for n, rule in enumerate(agent.answer, 1):
        if used.get(n, 0) >= rule.max or not re.search(rule.match, line):
            continue
        if not await asyncio.to_thread(terminal.send, sup.home.root, proc.task_id, rule.send):
            return False  # its terminal just ended: the attempt settles
        used[n] = used.get(n, 0) + 1
        prompt = one_line(line.strip())[:200]
        sup.store.give_input(
            proc.task_id,
            sup.clock(),
            "rule",
            send=rule.send,
            prompt=prompt,
            rule=n,
            count=used[n],
            attempt=proc.attempt,
        )
        note = f"answered {prompt!r} with {rule.send!r} (answer rule {n}: {used[n]} of {rule.max})"
        runner.append_to_log(sup.home.log_path(proc.task_id), f"--- kugetsu: {note} ---\n")
        return True
    return False


def _answers_given(sup: Supervisor, proc: Proc) -> dict[int, int]:
    """Answers each rule gave this attempt, as its events record them."""
    used: dict[int, int] = {}
    for event in sup.store.events(task_id=proc.task_id):
        data = event.data
        if (
            event.type is EventType.TASK_INPUT_GIVEN
            and data.get("by") == "rule"
            and data.get("attempt") == proc.attempt
            and event.ts >= (proc.admitted_at or 0.0)
            and isinstance(data.get("rule"), int)
        ):
            used[data["rule"]] = used.get(data["rule"], 0) + 1
    return used


def hold_clocks(sup: Supervisor, now: float) -> None:
    """Waiting for a person is not stalling: a flagged task's stall clock restarts at every
    sample. Its timeout stands still while it waits if its agent says
    timeout_counts_waiting = false, and runs on from where it stood once the flag clears."""
    waiting = {t.id for t in sup.store.live() if t.state is State.RUNNING and t.needs_input is not None}
    for proc in sup.procs.values():
        if proc.exited or proc.ending is not None:
            continue
        agent = sup.config.agents.get(proc.agent)
        if proc.task_id not in waiting:
            resume_timeout(proc, now)
            continue
        activity = sup.activity.get(proc.task_id)
        if activity is not None and not activity.stalled:
            sup.activity[proc.task_id] = dataclasses.replace(activity, since=now)
        if agent is not None and not agent.timeout_counts_waiting:
            pause_timeout(proc, now)
        else:
            resume_timeout(proc, now)
