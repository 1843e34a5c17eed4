"""How tasks read to people and to scripts: symbols, durations and the status report.

Shared by the CLI and the dashboard so that both say the same thing the same way.
Reads the store; never changes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import budget
from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.messages import SupervisorFacts, agent_slots, lowered_limits
from kugetsu_tui.engine.model import LIVE_STATES, State, Task, iso
from kugetsu_tui.engine.slots import Constraints, explain_queue
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.text import printable

# Set by `kugetsu web` for each dashboard it serves: the browser's address. Both faces
# name it, so it lives here, below them.
BROWSER_ENV = "KUGETSU_BROWSER"

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


def supervisor_facts(store: Store, home: Home, now: float) -> SupervisorFacts | None:
    """What the running supervisor last published (cap, suggestion, machine), or None if
    none runs. Facts it has not refreshed lately are left out, but for the cap."""
    pid = home.supervisor_pid()
    if pid is None:
        return None
    fresh = {k: v for k, (v, ts) in store.meta().items() if now - ts < META_FRESH or k == "cap"}
    return replace(SupervisorFacts.from_meta(fresh), supervisor_pid=pid if pid > 0 else None)


def suspended_agents(store: Store, facts: SupervisorFacts) -> dict[str, str]:
    """Agents the running supervisor suspended after fatal errors: name -> why."""
    published = store.meta().get("suspended", (None, 0.0))[0]
    if not isinstance(published, dict) or published.get("pid") != facts.supervisor_pid:
        return {}  # none, or left by a supervisor that has since stopped
    return {str(a): str(why) for a, why in (published.get("agents") or {}).items()}


def cluster_nodes(store: Store, now: float) -> list[dict[str, Any]] | None:
    """The Ray cluster's nodes as the running supervisor last read them (name, address,
    its live agents, slots, CPUs, memory), or None: agents run here, or no fresh reading."""
    nodes, ts = store.meta().get("nodes", (None, 0.0))
    return nodes if isinstance(nodes, list) and now - ts < META_FRESH else None


def node_line(node: Mapping[str, Any]) -> str:
    """One node of the cluster as status and the dashboard's header show it."""
    from kugetsu_tui.engine.capacity import gib

    host, address = printable(str(node.get("host"))), printable(str(node.get("address")))
    cpus = node.get("cpus")
    return (
        f"node {host} {address} {printable(str(node.get('node_id')))[:12]}: "
        f"{node.get('live')}/{node.get('slots')} agents live, "
        f"{cpus:g} CPUs, {gib(node.get('memory') or 0)}"
        if isinstance(cpus, int | float)
        else f"node {host} {address}: {node.get('live')}/{node.get('slots')} agents live"
    )


def cluster_label(machine: Mapping[str, Any] | None) -> str | None:
    """The header's note that the advisor's figures are a Ray cluster's, or None."""
    if not machine or machine.get("scope") != "cluster":
        return None
    nodes = machine.get("nodes")
    return f"cluster of {nodes} nodes, {machine.get('slots')} slots" if nodes else "cluster"


def advise_now(store: Store, config: Config) -> dict[str, Any]:
    """The advisor's suggestion computed here and now, for when no supervisor publishes one.

    One instant: no CPU percent (unknown, not 0)."""
    from kugetsu_tui.engine.capacity import limits_for, profile_in_play, suggest_cap
    from kugetsu_tui.engine.readings import read_machine_once

    machine = read_machine_once()
    profile = profile_in_play(store, config)
    suggestion = suggest_cap(machine, limits_for(config), profile, store.live_count())
    return {"suggested_cap": suggestion.cap, "cap_reason": suggestion.reason, "machine": machine.to_json()}


def constraints(
    config: Config,
    tasks: Iterable[Task],
    *,
    deps: Mapping[int, Sequence[tuple[int, State]]],
    blocked: str | None,
    cooling: Mapping[str, float],
    lowered: Mapping[str, int] | None = None,  # agent -> max_live as rate limits lowered it
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
        agent_max=config.agent_max_live | dict(lowered or {}),
        repo_max=config.repo_max_live,
        agent_live=agent_live,
        repo_live=repo_live,
    )


def _cooldowns(summary: Mapping[str, Any]) -> dict[str, float]:
    """agent -> until (epoch seconds), from a status summary."""
    return {agent: _ts(until) for agent, until in summary["cooldowns"].items()}


def _ts(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text).timestamp()


# Ended tasks, listed after the live and the queued ones.
ENDED_STATES = frozenset(State) - LIVE_STATES - {State.QUEUED}
CHUNK = 500  # queued tasks explained at a time when a report streams


@dataclass(frozen=True, slots=True)
class Selection:
    """Which tasks a status report lists, in the order people read them: live (newest
    first), queued (in admission order), then ended (newest first)."""

    states: frozenset[State] = frozenset(State)
    ids: frozenset[int] | None = None  # only these tasks
    limit: int | None = 50  # None: every task that matches
    recent_succeeded: int | None = None  # at most this many succeeded, after the other ended


def status_summary(store: Store, home: Home, config: Config, now: float) -> tuple[dict[str, Any], bool]:
    """Everything `kugetsu status --json` prints but the tasks: cap, live, counts (from
    SQL, never from the rows), the budget, the advisor's suggestion and what the supervisor published;
    and whether a supervisor runs (its pid may not be known yet)."""
    published = supervisor_facts(store, home, now)
    facts = published or SupervisorFacts()
    cap = facts.cap if published is not None and facts.cap is not None else config.cap
    advice = {"suggested_cap": facts.suggested_cap, "cap_reason": facts.cap_reason, "machine": facts.machine}
    if facts.suggested_cap is None:
        advice = advise_now(store, config)
    counts = store.counts()
    summary = {
        "cap": cap,
        "live": sum(counts[s] for s in LIVE_STATES),
        "cap_mode": config.cap_mode,
        **advice,
        "admission_blocked": facts.admission_blocked,
        "config_error": facts.config_error,
        "cooldowns": {agent: iso(until) for agent, until in facts.cooldowns.items()},
        "agents": agent_slots(config.agent_ceilings(cap), facts.slots),
        "suspended": suspended_agents(store, facts),
        "supervisor_pid": facts.supervisor_pid,
        "nodes": cluster_nodes(store, now) if published is not None else None,
        "counts": {str(s): counts[s] for s in State},
        "budget": budget.report(store, config),  # None (and nothing read) when none is configured
    }
    return summary, published is not None


def status_report(
    store: Store, home: Home, config: Config, now: float, selection: Selection = Selection()
) -> dict[str, Any]:
    """The object `kugetsu status --json` prints (the contract scripts rely on): the
    summary, the selected tasks (each queued one with its position and wait reason) and
    `more`, how many matched but were left out by the limit. Reads only what it lists."""
    with store.reading():
        report, running = status_summary(store, home, config, now)
        report["tasks"] = list(
            status_rows(store, config, report, now, selection, supervisor=running, home=home)
        )
        report["more"] = matched(store, report, selection) - len(report["tasks"])
    return report


def matched(store: Store, summary: Mapping[str, Any], selection: Selection) -> int:
    """How many tasks the selection lists without its limit (from SQL counts)."""
    if selection.ids is None:
        counts = {State(k): int(n) for k, n in summary["counts"].items()}
    else:
        counts = store.counts(selection.ids)
    total = sum(counts[s] for s in selection.states)
    if selection.recent_succeeded is not None and State.SUCCEEDED in selection.states:
        total -= max(counts[State.SUCCEEDED] - selection.recent_succeeded, 0)
    return total


def status_rows(
    store: Store,
    config: Config,
    summary: Mapping[str, Any],
    now: float,
    selection: Selection,
    *,
    supervisor: bool,
    home: Home | None = None,
) -> Iterator[dict[str, Any]]:
    """The selected tasks as `status --json` rows, read lazily in display order (for a
    report that streams, call inside `store.reading()`), each with its `children` and,
    given the home, the Ray node it ran on (`node`, None when on this machine)."""
    rows = _rows(store, config, summary, now, selection, supervisor=supervisor)
    while chunk := list(islice(rows, CHUNK)):
        children = store.children([row["id"] for row in chunk])
        for row in chunk:
            row["children"] = children.get(row["id"], [])
            if home is not None:
                row["node"] = None if row["state"] == str(State.QUEUED) else node_of(home.run_dir(row["id"]))
            yield row


def _rows(
    store: Store,
    config: Config,
    summary: Mapping[str, Any],
    now: float,
    selection: Selection,
    *,
    supervisor: bool,
) -> Iterator[dict[str, Any]]:
    sections: list[tuple[frozenset[State], bool, int | None]] = [
        (selection.states & LIVE_STATES, True, None),
        (selection.states & {State.QUEUED}, False, None),
    ]
    ended = selection.states & ENDED_STATES
    if selection.recent_succeeded is None:
        sections.append((ended, True, None))
    else:
        sections.append((ended - {State.SUCCEEDED}, True, None))
        sections.append((ended & {State.SUCCEEDED}, True, selection.recent_succeeded))
    left = selection.limit
    for states, newest_first, at_most in sections:
        limit = at_most if left is None else left if at_most is None else min(at_most, left)
        if not states or limit == 0:
            continue
        tasks = store.select(states, ids=selection.ids, newest_first=newest_first, limit=limit)
        if states == {State.QUEUED}:
            explain = _Explainer(store, config, summary, now, supervisor)
            rows = _queued_rows(store, explain, now, tasks, whole_queue=selection.ids is None)
        else:
            rows = (_row(task, now, None, None) for task in tasks)
        for row in rows:
            yield row
            if left is not None:
                left -= 1


def node_of(run_dir: Path) -> dict[str, str] | None:
    """The Ray node the task's last attempt ran on (its executor writes it), or None."""
    try:
        found = json.loads((run_dir / "node").read_bytes())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def node_label(node: Mapping[str, Any] | None) -> str:
    """A node as a column shows it: its host and the start of its Ray node id."""
    if not node:
        return ""
    return f"{node.get('host', '?')}/{str(node.get('node_id', ''))[:6]}"


def _row(task: Task, now: float, position: int | None, reason: str | None) -> dict[str, Any]:
    row = task.to_json()
    row["position"] = position
    row["wait_reason"] = reason
    row["usage"] = task.usage(now)
    row["needs_input"] = task.needs_input if task.is_live else None  # waits for a person: why
    return row


def _queued_rows(
    store: Store, explain: _Explainer, now: float, tasks: Iterator[Task], *, whole_queue: bool
) -> Iterator[dict[str, Any]]:
    """Rows of queued tasks given in admission order, explained a chunk at a time.

    With `whole_queue` the tasks are the queue from its head, so a running count gives
    positions; otherwise (some ids) SQL counts the tasks ahead of each."""
    ahead = 0
    while chunk := list(islice(tasks, CHUNK)):
        reasons = explain.wait_reasons(chunk)
        if whole_queue:
            positions: dict[int, int] = {}
            for task in chunk:
                if not task.held:
                    ahead += 1
                    positions[task.id] = ahead
        else:
            positions = store.positions([t.id for t in chunk])
        for task in chunk:
            yield _row(task, now, positions.get(task.id), reasons.get(task.id))


class _Explainer:
    """Wait reasons for any queued tasks without walking the queue up to them.

    `explain_queue` says "starting" to the first runnable tasks that fit in the free
    slots. Those few (at most cap - live) are read once with SQL; explaining them together
    with any tasks in admission order gives each task the reason it would have in a walk
    of the whole queue."""

    def __init__(
        self, store: Store, config: Config, summary: Mapping[str, Any], now: float, supervisor: bool
    ) -> None:
        self.store, self.now, self.supervisor = store, now, supervisor
        self.cap, self.live = int(summary["cap"]), int(summary["live"])
        self.suspended: dict[str, str] = dict(summary.get("suspended") or {})
        live = store.live()
        self.constraints = constraints(
            config,
            live,
            deps={},
            blocked=summary["admission_blocked"],
            cooling=_cooldowns(summary),
            lowered=lowered_limits(summary.get("agents") or {}),
        )
        self.first: list[Task] = []
        free = self.cap - self.live
        if free > 0 and self.supervisor and not self.constraints.blocked:
            c = self.constraints
            agents = {a for a, until in c.cooling.items() if until > now} | set(self.suspended)
            agents |= {a for a, most in c.agent_max.items() if c.agent_live.get(a, 0) >= most}
            repos = {r for r, most in c.repo_max.items() if c.repo_live.get(r, 0) >= most}
            self.first = store.runnable(now, free, skip_agents=agents, skip_repos=repos)

    def wait_reasons(self, queued: Sequence[Task]) -> dict[int, str]:
        merged = {t.id: t for t in (*self.first, *queued)}
        ordered = sorted(merged.values(), key=lambda t: (-t.priority, t.id))
        view = explain_queue(
            ordered,
            live=self.live,
            cap=self.cap,
            now=self.now,
            supervisor=self.supervisor,
            constraints=replace(self.constraints, deps=self.store.dependencies(list(merged))),
        )
        reasons = dict(view.wait_reason)
        for task in queued:
            if task.agent in self.suspended and not task.held:
                reasons[task.id] = printable(self.suspended[task.agent])
        return reasons


def lineage(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """`status --json` rows as a tree, depth first: (depth, row) with each task's children
    (its `children` ids, in id order) right after it. A task whose parent is not among the
    rows is a root; roots keep the order they came in."""
    by_id = {row["id"]: row for row in rows}
    out: list[tuple[int, Mapping[str, Any]]] = []
    seen: set[int] = set()
    for root in rows:
        if root.get("parent") in by_id:
            continue
        stack: list[tuple[int, Mapping[str, Any]]] = [(0, root)]
        while stack:  # a stack, not recursion: a chain of delegations may be long
            depth, row = stack.pop()
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            out.append((depth, row))
            kids = [by_id[c] for c in row.get("children") or () if c in by_id]
            stack.extend((depth + 1, kid) for kid in reversed(kids))
    return out
