"""The rate-limit policy: one episode is one cooldown, however many attempts hit the limit
together; it ends at the reset the agent reported, else after a doubling backoff. Pure:
the supervisor passes the times in."""

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
