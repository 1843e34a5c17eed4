"""Stall detection: an attempt with no new output and its tree under 1% CPU for its
agent's `stall_after` is stalled; new output or CPU brings it back. Pure."""

from __future__ import annotations

from dataclasses import dataclass

STALL_CPU = 1.0  # percent of one core: below it, an agent with no new output is idle


@dataclass(frozen=True, slots=True)
class Activity:
    """When an attempt last showed life: its log grew, or its tree used the CPU."""

    log_size: int
    since: float
    stalled: bool = False


def stall_check(
    before: Activity | None, *, log_size: int, cpu_percent: float | None, now: float, stall_after: float
) -> tuple[Activity, bool | None]:
    """The attempt's activity after one sample, and what changed: True when it has just
    stalled (no new output and under 1% CPU for stall_after), False when a stalled one
    has just come back to life, None otherwise. An unknown CPU reading counts as busy."""
    busy = cpu_percent is None or cpu_percent >= STALL_CPU
    if before is None or log_size != before.log_size or busy:
        return Activity(log_size, now), (False if before is not None and before.stalled else None)
    if not before.stalled and now - before.since >= stall_after:
        return Activity(log_size, before.since, True), True
    return before, None
