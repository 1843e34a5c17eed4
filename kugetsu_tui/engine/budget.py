"""The budget pool: what the agents reported they spent, held against `[budget]`.

Spent is the sum of the usage agents reported of themselves, attempt by attempt (the
store's spend ledger keeps every attempt's report, retries included). Once it reaches a
limit, nothing new is admitted (fail closed); what already runs goes on. An agent that
reported nothing is unmetered: counted apart, never as a zero. Pure, but for report().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kugetsu_tui.engine.config import Config
    from kugetsu_tui.engine.store import Store


@dataclass(frozen=True, slots=True)
class Spent:
    """The sums of what the agents reported: dollars, and tokens (input plus output); each
    None while no agent reported that figure at all."""

    cost_usd: float | None = None
    tokens: int | None = None


def configured(config: Config) -> bool:
    return config.budget_cost_usd is not None or config.budget_tokens is not None


def exhausted(spent: Spent, config: Config) -> str | None:
    """Why nothing new may be admitted (the budget is spent), or None."""
    cost, tokens = config.budget_cost_usd, config.budget_tokens
    # (Rounded: a sum of reported floats, 0.02 + 0.03, must reach a limit of 0.05.)
    if cost is not None and spent.cost_usd is not None and round(spent.cost_usd, 9) >= cost:
        return f"budget spent: ${spent.cost_usd:,.2f} of ${cost:,.2f}"
    if tokens is not None and spent.tokens is not None and spent.tokens >= tokens:
        return f"budget spent: {spent.tokens:,} of {tokens:,} tokens"
    return None


def report(store: Store, config: Config) -> dict[str, Any] | None:
    """`status --json`'s `budget`: each measure's spent (null: nothing reported) and limit
    (null: no limit of that kind), and how many tasks ran unmetered; None when no budget is
    configured (and then nothing is read)."""
    if not configured(config):
        return None
    spent = store.spent()
    return {
        "cost_usd": {
            "spent": None if spent.cost_usd is None else round(spent.cost_usd, 6),
            "limit": config.budget_cost_usd,
        },
        "tokens": {"spent": spent.tokens, "limit": config.budget_tokens},
        "unmetered_tasks": store.unmetered_tasks(),
    }
