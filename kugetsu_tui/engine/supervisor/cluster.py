"""The cluster's part in admission and advice when agents run on a Ray cluster
(`[executor] kind = "ray"`): admission holds while the cluster cannot be reached (fail
closed: queued tasks stay queued, no attempt spent; said once in the events, shown by
status while it lasts), the advisor's figures are the cluster's (its `kugetsu_agent`
slots, CPUs and memory as Ray reports them), and status gets one line per node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine.capacity import AgentProfile, Limits, Machine, Suggestion, suggest_cap
from kugetsu_tui.engine.executor.ray_cluster import ClusterReading, Unreachable
from kugetsu_tui.engine.executor.ray_shared import RESOURCE
from kugetsu_tui.engine.model import EventType, Task
from kugetsu_tui.engine.runner import SpawnError
from kugetsu_tui.engine.supervisor import settle

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor

UNREACHABLE = "cluster unreachable"


def _reader(sup: Supervisor) -> Callable[[], ClusterReading] | None:
    """The executor's way to read its cluster; None for one that runs agents here."""
    reader: Callable[[], ClusterReading] | None = getattr(sup.executor, "read_cluster", None)
    return reader


def block(sup: Supervisor) -> str | None:
    """Why nothing may be admitted for want of the cluster, or None."""
    if _reader(sup) is None:
        return None
    if sup.cluster_down is not None:
        return sup.cluster_down
    if sup.cluster is None:
        return "waiting for the first reading of the Ray cluster"
    return None


async def sample(sup: Supervisor) -> ClusterReading | None:
    """Read the cluster (in a thread); note when it stops or starts answering, once each.
    The reading, or None while it cannot be reached (or agents run here)."""
    reader = _reader(sup)
    if reader is None:
        return None
    try:
        reading = await asyncio.to_thread(reader)
    except SpawnError as err:  # out of reach, or Ray missing here: either way nothing can start
        _down(sup, err)
        return None
    if sup.cluster_down is not None:
        nodes = len(reading.nodes)
        note = f"the Ray cluster answers again ({nodes} node{'' if nodes == 1 else 's'}): admission resumed"
        sup.write_or_defer(
            partial(sup.store.record, sup.clock(), EventType.SUPERVISOR_WARNING, None, {"error": note})
        )
    first = sup.cluster is None
    sup.cluster_down, sup.cluster = None, reading
    if first:
        sup.wake()  # admission waited for this reading
    return reading


def _down(sup: Supervisor, err: SpawnError) -> None:
    down = f"{UNREACHABLE}: {err}"
    if sup.cluster_down is None:  # said once, not on every look
        note = f"{down}; nothing is admitted until it answers"
        sup.write_or_defer(
            partial(sup.store.record, sup.clock(), EventType.SUPERVISOR_WARNING, None, {"error": note})
        )
    sup.cluster_down, sup.cluster = down, None


def went_away(sup: Supervisor, task: Task, err: SpawnError, now: float) -> bool:
    """An attempt not started because the cluster stopped answering since its last look:
    queued again with the attempt given back, admission held. False for other failures."""
    if not isinstance(err, Unreachable):
        return False
    _down(sup, err)
    why = f"{UNREACHABLE} before it could start"
    sup.write_or_defer(partial(settle.interrupted, sup, task.id, now, why, refund=True))
    return True


def as_machine(reading: ClusterReading) -> Machine:
    """The cluster as one machine for the advisor: Ray's CPUs and its memory not yet
    held by actors (each attempt's actor holds its agent's estimate). Ray gives no load."""
    return Machine(
        cpus=max(int(reading.cpus), 1),
        cpu_percent=None,
        load1=None,
        mem_total=reading.memory,
        mem_available=reading.memory_available,
    )


def suggest(
    reading: ClusterReading, limits: Limits, profile: AgentProfile, live: int, agents_cpu: float
) -> Suggestion:
    """The cap the cluster can hold: the advisor's figure for its CPUs and memory, and no
    more than the `kugetsu_agent` slots its nodes hold (past them an attempt only waits)."""
    raw = suggest_cap(as_machine(reading), limits, profile, live, agents_cpu)
    nodes = len(reading.nodes)
    head = f"cluster of {nodes} node{'' if nodes == 1 else 's'}: {reading.slots} {RESOURCE} slots"
    if reading.slots >= raw.cap:
        return Suggestion(raw.cap, f"{head}; {raw.reason}", raw.by_memory, raw.each_rss)
    cap = min(max(reading.slots, limits.cap_min), limits.cap_max)
    bound = "" if cap == reading.slots else f", kept within [{limits.cap_min}, {limits.cap_max}]"
    return Suggestion(cap, f"{head} → {reading.slots}{bound}; {raw.reason}", raw.by_memory, raw.each_rss)


def machine_facts(sup: Supervisor) -> dict[str, Any] | None:
    """The machine status shows: the cluster's figures (`scope` says so) under Ray."""
    if sup.machine is None:
        return None
    facts = sup.machine.to_json()
    if _reader(sup) is not None:  # (while the cluster is out of reach: its last figures)
        facts["scope"] = "cluster"
        if sup.cluster is not None:
            facts |= {"nodes": len(sup.cluster.nodes), "slots": sup.cluster.slots}
    return facts


def node_facts(sup: Supervisor) -> list[dict[str, Any]] | None:
    """One entry per node of the cluster for status; None when agents run here."""
    if sup.cluster is None:
        return None
    return [node.to_json() for node in sup.cluster.nodes]
