"""How tasks read to people and to scripts: symbols, durations and the status report.

Shared by the CLI and the dashboard so that both say the same thing the same way.
Reads the store; never changes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import LIVE_STATES, State, Task
from kugetsu_tui.engine.slots import Constraints, explain_queue
from kugetsu_tui.engine.store import Store

# A symbol per state, so the state reads without colour too.
STATE_SYMBOL: dict[State, str] = {
    State.QUEUED: "·",
    State.STARTING: "◌",
    State.RUNNING: "▶",
    State.PAUSED: "‖",
    State.SUCCEEDED: "✓",
    State.FAILED: "✗",
    State.CANCELLED: "⊘",
    State.EXPIRED: "⌛",
}


def elapsed(seconds: float | None) -> str:
    """1:05, 12:30, 2h05m; '?' for unknown."""
    if seconds is None:
        return "?"
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    hours, rest = divmod(seconds, 3600)
    if hours < 48:
        return f"{hours}h{rest // 60:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def work_summary(row: Mapping[str, Any]) -> str:
    """What a settled task's work amounts to, from its status row: "+12 −3 in 2 files",
    "no changes", then what became of it ("merged") or why its worktree stays."""
    changes = row.get("changes")
    reason = row.get("reason") or ""
    if changes is None:
        return ""
    if changes["files"] == 0 and changes["commits"] == 0:
        text = "no changes"
    else:
        files = changes["files"]
        text = f"+{changes['insertions']} −{changes['deletions']} in {files} file{'' if files == 1 else 's'}"
    if row.get("review") not in (None, "unreviewed"):
        text += f", {row['review']}"
    if reason.startswith("kept:") and row.get("state") == "succeeded":
        text += f" ({reason})"
    return text


META_FRESH = 10.0  # seconds: a supervisor publishes every few seconds


def supervisor_facts(store: Store, home: Home, now: float) -> dict[str, Any]:
    """What the running supervisor last published (cap, suggestion, machine), or {} if none
    runs or it has gone quiet."""
    pid = home.supervisor_pid()
    if pid is None:
        return {}
    facts = {k: v for k, (v, ts) in store.meta().items() if now - ts < META_FRESH or k == "cap"}
    facts["supervisor_pid"] = pid if pid > 0 else None
    return facts


def advise_now(store: Store, config: Config) -> dict[str, Any]:
    """The advisor's suggestion computed here and now, for when no supervisor publishes one.

    Imports psutil, so only `status` without a supervisor pays for it."""
    from kugetsu_tui.engine.capacity import limits_for, profile_in_play, read_machine, suggest_cap

    machine = read_machine()
    profile = profile_in_play(store, config)
    suggestion = suggest_cap(machine, limits_for(config), profile, store.live_count())
    json_machine = machine.to_json()
    json_machine["cpu_percent"] = None  # one instant gives no CPU percent: unknown
    return {"suggested_cap": suggestion.cap, "cap_reason": suggestion.reason, "machine": json_machine}


def constraints(
    config: Config,
    tasks: Iterable[Task],
    *,
    deps: Mapping[int, Sequence[tuple[int, State]]],
    blocked: str | None,
    cooling: Mapping[str, float],
) -> Constraints:
    """What besides the cap holds queued tasks back, as the supervisor sees it. `tasks`
    must hold every live task (for the per-agent and per-repo counts); `deps` is
    `Store.dependencies` of the queued ones to explain. The CLI's status and the
    dashboard both build their wait reasons here."""
    tasks = list(tasks)
    agent_live: dict[str, int] = {}
    repo_live: dict[str, int] = {}
    for task in tasks:
        if task.is_live:
            agent_live[task.agent] = agent_live.get(task.agent, 0) + 1
            repo_live[task.repo or ""] = repo_live.get(task.repo or "", 0) + 1
    return Constraints(
        blocked=blocked,
        deps=deps,
        cooling=cooling,
        agent_max=config.agent_max_live,
        repo_max=config.repo_max_live,
        agent_live=agent_live,
        repo_live=repo_live,
    )


def cooldowns_from_facts(facts: Mapping[str, Any]) -> dict[str, float]:
    """agent -> until (epoch seconds), from what a supervisor published."""
    return {agent: _ts(until) for agent, until in (facts.get("cooldowns") or {}).items()}


def _ts(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text).timestamp()


def status_report(store: Store, home: Home, config: Config, now: float) -> dict[str, Any]:
    """The object `kugetsu status --json` prints (the contract scripts rely on)."""
    facts = supervisor_facts(store, home, now)
    running = "supervisor_pid" in facts
    cap = int(facts.get("cap", config.cap)) if running else config.cap
    if "suggested_cap" not in facts or facts.get("suggested_cap") is None:
        facts.update(advise_now(store, config))
    tasks = store.tasks()
    # Counts come from the tasks read once, so they always agree with the list.
    counts = Counter(t.state for t in tasks)
    queued = [t for t in tasks if t.state is State.QUEUED]
    live = sum(counts[s] for s in LIVE_STATES)
    view = explain_queue(
        queued,
        live=live,
        cap=cap,
        now=now,
        supervisor=running,
        constraints=constraints(
            config,
            tasks,
            deps=store.dependencies([t.id for t in queued]),
            blocked=facts.get("admission_blocked"),
            cooling=cooldowns_from_facts(facts),
        ),
    )
    rows = []
    for task in tasks:
        row = task.to_json()
        row["position"] = view.position.get(task.id)
        row["wait_reason"] = view.wait_reason.get(task.id)
        row["usage"] = task.usage(now)
        rows.append(row)
    return {
        "cap": cap,
        "live": live,
        "cap_mode": config.cap_mode,
        "suggested_cap": facts.get("suggested_cap"),
        "cap_reason": facts.get("cap_reason"),
        "machine": facts.get("machine"),
        "admission_blocked": facts.get("admission_blocked"),
        "config_error": facts.get("config_error"),
        "cooldowns": facts.get("cooldowns") or {},
        "supervisor_pid": facts.get("supervisor_pid"),
        "counts": {str(s): counts[s] for s in State},
        "tasks": rows,
    }
