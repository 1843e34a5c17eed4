"""The rate-limit policy: one episode is one cooldown, however many attempts hit the limit
together; it ends at the reset the agent reported, else after a doubling backoff. Each
episode also halves the agent's effective max_live, and clean stretches of successes give
the slots back one at a time (AIMD). Pure: the supervisor passes the times in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cooldown:
    """An agent's rate-limit episode: when it began, when it ends, how many in a row."""

    began: float
    until: float
    hits: int
    reported: bool  # `until` is the reset the agent reported, not our backoff


def next_cooldown(
    current: Cooldown | None,
    *,
    now: float,
    attempt_started: float | None,
    reported_at: float,
    retry_after: float | None,
    base: float,
    longest: float,
) -> tuple[Cooldown, bool]:
    """The cooldown after an attempt hit a rate limit, and whether it is a new episode.

    An attempt that started before the current episode began, or that ends while it
    lasts, saw the same limit: it joins the episode (its end moves to a later reset the
    server reported, never doubles). A new episode waits for the reported reset when there
    is one, else `base` doubled per episode in a row, at most `longest`."""
    reset = reported_at + retry_after if retry_after is not None else None
    if current is not None and (
        current.until > now or (attempt_started is not None and attempt_started <= current.began)
    ):
        if reset is not None and reset > current.until:
            return Cooldown(current.began, min(reset, now + longest), current.hits, True), False
        return current, False
    hits = (current.hits if current is not None else 0) + 1
    if reset is not None and reset > now:
        return Cooldown(now, min(reset, now + longest), hits, True), True
    return Cooldown(now, now + min(base * 2 ** (hits - 1), longest), hits, False), True


# --- rate limits shape concurrency (AIMD) -------------------------------------------

RECOVER_AFTER = 3  # successes in a row, of attempts admitted after the cut, per slot given back


@dataclass(frozen=True, slots=True)
class Slots:
    """An agent's effective max_live while rate limits have lowered it."""

    effective: int
    since: float  # when it last changed
    limited_at: float  # when the last rate-limit episode cut it
    clean: int = 0  # successes in a row counted toward the next slot


def cut_slots(current: Slots | None, ceiling: int, now: float) -> Slots:
    """A new rate-limit episode halves the effective limit (down to 1): the whole fleet of
    that agent backs off, rather than hitting the limit together when the cooldown ends."""
    effective = min(current.effective, ceiling) if current is not None else ceiling
    return Slots(max(effective // 2, 1), now, now)


def credit_slots(current: Slots, ceiling: int, now: float, admitted_at: float | None) -> Slots | None:
    """A success: each RECOVER_AFTER of them in a row gives one slot back; None once the
    limit is back at its ceiling. An attempt admitted before the cut ran under the old
    limit and says nothing about the new one: it does not count."""
    if admitted_at is None or admitted_at < current.limited_at:
        return current
    if current.clean + 1 < RECOVER_AFTER:
        return Slots(current.effective, current.since, current.limited_at, current.clean + 1)
    effective = current.effective + 1
    return None if effective >= ceiling else Slots(effective, now, current.limited_at)
