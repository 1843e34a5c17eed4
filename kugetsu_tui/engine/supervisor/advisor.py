"""The capacity advisor: on its own slower timer it meters the live agents and the
machine (psutil), suggests a cap (applied when cap_mode = "auto"), pauses the newest
agent under memory pressure, and publishes what status and attached dashboards show.
Between samples, a fresh available-memory reading guards admission (fail closed)."""

from __future__ import annotations

import asyncio
import os
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine import runner
from kugetsu_tui.engine.capacity import Machine, Suggestion, gib, limits_for, profile_in_play, suggest_cap
from kugetsu_tui.engine.executor.ray_cluster import ClusterReading
from kugetsu_tui.engine.messages import SupervisorFacts
from kugetsu_tui.engine.model import EventType, State
from kugetsu_tui.engine.readings import TreeUsage, available_memory, read_machine
from kugetsu_tui.engine.store import disk_full
from kugetsu_tui.engine.supervisor import cluster, limits, output, reload, requests
from kugetsu_tui.engine.supervisor.waiting import watch_for_input

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor

SAMPLE_EVERY = 2.0  # usage metering and the capacity advisor: their own, slower timer
MEMORY_FRESH = 0.5  # an available-memory reading younger than this guards admission


def memory_block(sup: Supervisor) -> str | None:
    """Why nothing may be admitted now whatever the cap (fail closed), or None."""
    reserve = sup.config.memory_reserve
    if reserve <= 0:
        return None
    tick = time.monotonic()
    if sup.memory is None or tick - sup.memory[0] > MEMORY_FRESH:
        sup.memory = (tick, available_memory())
    available = sup.memory[1]
    if available < reserve:
        return f"memory reserve: {gib(available)} available, below the {gib(reserve)} reserve"
    return None


async def sample_forever(sup: Supervisor) -> None:
    while True:
        with sup.unless_disk_full():  # (a measurement not written is not worth keeping)
            if reload.config_signature(sup) != sup.loaded_signature:
                reload.reload_config(sup)  # a change the file watcher missed (e.g. before it was ready)
            try:
                await sample_once(sup)
            except Exception as err:  # a failed reading must never stop supervision
                if disk_full(err):
                    raise
                note = {"error": f"sampling failed: {err!r}"}
                sup.write_or_defer(
                    partial(sup.store.record, sup.clock(), EventType.SUPERVISOR_WARNING, None, note)
                )
        await asyncio.sleep(SAMPLE_EVERY)


def _read(sup: Supervisor, roots: list[int], tasks: list[int]) -> tuple[Machine, dict[int, TreeUsage]]:
    """The slow part, in a thread: cap growing logs, read the machine and the agents' trees."""
    for task_id in tasks:
        runner.cap_log(sup.home.log_path(task_id), int(sup.config.max_log))
    return read_machine(), sup.meter.sample(roots)


async def sample_once(sup: Supervisor) -> None:
    # (Attempts on other machines have no local pid: their ids are negative.)
    roots = {p.pid: p.task_id for p in sup.procs.values() if not p.exited and p.pid > 0}
    machine, trees = await asyncio.to_thread(_read, sup, list(roots), list(roots.values()))
    now = sup.clock()
    sup.memory = (time.monotonic(), machine.mem_available)
    cpu = _record_usage(sup, roots, trees, now)
    await watch_for_input(sup)  # first: a task waiting for a person is not stalled
    output.check_running(sup, now, cpu)
    reading = await cluster.sample(sup)
    if reading is not None or sup.cluster_down is None:  # (out of reach: its last figures stay)
        agents_cpu = sum(u.cpu_percent or 0.0 for u in trees.values()) / 100
        _advise(sup, machine, reading, agents_cpu, now)
    relieve_memory_pressure(sup, machine, now)
    publish(sup, now)


def _record_usage(
    sup: Supervisor, roots: dict[int, int], trees: dict[int, TreeUsage], now: float
) -> dict[int, float | None]:
    """Store each live attempt's usage (measured here, or on its node by the Ray executor);
    each one's CPU percent, by task."""
    by_task = {roots[pid]: usage for pid, usage in trees.items() if pid in roots}
    for pid, usage in trees.items():
        proc = sup.procs.get(roots.get(pid, -1))
        if proc is not None and proc.pid == pid:  # (still that attempt: the read took a while)
            proc.descendants |= usage.members  # ended at settle if they outlive the attempt
    remote: dict[int, TreeUsage] = dict(getattr(sup.executor, "remote_usage", {}))
    by_task |= {task_id: usage for task_id, usage in remote.items() if task_id in sup.procs}
    sup.store.record_usage([(task_id, _usage(u)) for task_id, u in by_task.items()], now)
    return {task_id: u.cpu_percent for task_id, u in by_task.items()}


def _advise(
    sup: Supervisor, machine: Machine, reading: ClusterReading | None, agents_cpu: float, now: float
) -> None:
    """Suggest a cap from this machine, or from the cluster the agents run on (reading);
    apply it in auto mode."""
    live = len(sup.procs) + len(sup.starting)
    limits, profile = limits_for(sup.config), profile_in_play(sup.store, sup.config)
    if reading is None:
        sup.machine = machine
        raw = suggest_cap(machine, limits, profile, live, agents_cpu)
    else:
        sup.machine = cluster.as_machine(reading)
        raw = cluster.suggest(reading, limits, profile, live, agents_cpu)
    smoothed = sup.smoother.update(raw.cap, raw.by_memory)
    reason = raw.reason
    if smoothed != raw.cap:
        reason += f"; holding {smoothed}: it moves one step once {raw.cap} has held a while"
    sup.suggestion = Suggestion(smoothed, reason, raw.by_memory, raw.each_rss)
    if sup.config.cap_mode == "auto" and sup.suggestion.cap != sup.cap:
        requests.set_cap(sup, smoothed, now, reason=f"suggested {smoothed}: {reason}")


def _usage(u: TreeUsage) -> dict[str, Any]:
    return {"cpu_seconds": u.cpu_seconds, "rss": u.rss, "cpu_percent": u.cpu_percent, "procs": u.procs}


def relieve_memory_pressure(sup: Supervisor, machine: Machine, now: float) -> None:
    """memory_pressure = "pause_newest": the policy (capacity.PressureRelief) decides,
    one pause or resume at a time; this carries it out."""
    if sup.config.memory_pressure != "pause_newest":
        return
    running, paused = _running_and_paused(sup)
    step = sup.pressure.decide(now, machine.mem_available, sup.config.memory_reserve, running, paused)
    if step is None:
        return
    action, task_id = step
    if action == "pause":
        why = f"memory pressure: {gib(machine.mem_available)} available"
        if requests.pause(sup, task_id, now, reason=why).ok:
            sup.pressure.record_pause(task_id, now)
    elif requests.resume(sup, task_id, now).ok or task_id not in sup.procs:
        sup.pressure.record_resume(task_id)


def _running_and_paused(sup: Supervisor) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """What PressureRelief decides over: (task, started at) of each running attempt, and
    the memory held by each it paused that is still paused."""
    running: list[tuple[int, float]] = []
    paused: dict[int, float] = {}
    for task in sup.store.live():
        if task.id not in sup.procs:
            continue
        if task.state is State.RUNNING:
            running.append((task.id, task.started_at or 0.0))
        elif task.state is State.PAUSED and task.id in sup.pressure.paused:
            paused[task.id] = float(task.rss or 0)
    return running, paused


def publish(sup: Supervisor, now: float) -> None:
    """What status and attached dashboards show about this supervisor."""
    facts = SupervisorFacts(
        supervisor_pid=os.getpid(),
        cap=sup.cap,
        cap_mode=sup.config.cap_mode,
        suggested_cap=sup.suggestion.cap if sup.suggestion else None,
        cap_reason=sup.suggestion.reason if sup.suggestion else None,
        machine=cluster.machine_facts(sup),
        admission_blocked=sup.admission_blocked,
        config_error=sup.config_error,
        cooldowns={a: u for a, (u, _) in sup.cooldowns.items() if u > now},
        slots=limits.published(sup),
    )
    sup.store.set_meta({**facts.to_meta(), "nodes": cluster.node_facts(sup)}, now)
