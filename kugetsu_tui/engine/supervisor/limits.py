"""Each agent's effective max_live as rate limits shape it (AIMD): a new rate-limit
episode halves it, clean stretches of successes give it back a slot at a time
(`agents.cut_slots`, `agents.credit_slots`). Admission holds each agent to it; the
advisor publishes it; a restarted supervisor takes it over from that publication."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine import agents
from kugetsu_tui.engine.agents import Slots
from kugetsu_tui.engine.messages import AgentSlots

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.attempt import Proc
    from kugetsu_tui.engine.supervisor.loop import Supervisor


def ceiling(sup: Supervisor, agent: str) -> int:
    """The most the agent may have live: its max_live, else the cap (the lower of the two)."""
    return sup.config.agent_ceilings(sup.cap).get(agent, max(sup.cap, 1))


def agent_max(sup: Supervisor) -> dict[str, int]:
    """What admission holds each agent to: its configured max_live, lowered by rate limits."""
    limits = dict(sup.config.agent_max_live)
    for agent, slots in sup.slots.items():
        limits[agent] = min(limits.get(agent, slots.effective), slots.effective)
    return limits


def rate_limited(sup: Supervisor, agent: str, now: float) -> int:
    """A new rate-limit episode for the agent: its limit halved. Returns the new limit."""
    slots = agents.cut_slots(sup.slots.get(agent), ceiling(sup, agent), now)
    sup.slots[agent] = slots
    return slots.effective


def succeeded(sup: Supervisor, proc: Proc, now: float) -> bool:
    """A success of the agent's: counted toward a slot back. True if the limit changed."""
    current = sup.slots.get(proc.agent)
    if current is None:
        return False
    after = agents.credit_slots(current, ceiling(sup, proc.agent), now, proc.admitted_at)
    if after is None:
        del sup.slots[proc.agent]
        return True
    sup.slots[proc.agent] = after
    return after.effective != current.effective


def published(sup: Supervisor) -> dict[str, AgentSlots]:
    """The lowered limits as status and the dashboard show them (of the ceiling now)."""
    shown: dict[str, AgentSlots] = {}
    for agent, slots in sup.slots.items():
        top = ceiling(sup, agent)
        if slots.effective < top:
            shown[agent] = AgentSlots(slots.effective, top, slots.since, slots.limited_at)
    return shown


def restore(sup: Supervisor) -> None:
    """Take over the limits the last supervisor published: a restart is no way around a
    rate limit. (Its count toward the next slot back starts again.)"""
    value = sup.store.meta().get("slots", (None, 0.0))[0]
    if not isinstance(value, dict):
        return
    for agent, row in value.items():
        try:
            shown = AgentSlots.from_json(row)
        except (KeyError, TypeError, ValueError):
            continue  # written by another version: not worth failing a start for
        sup.slots[str(agent)] = Slots(max(shown.effective, 1), shown.since, shown.rate_limited_at)
