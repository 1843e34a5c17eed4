"""`status`: what runs, what waits and why, for a person or (with --json) a script."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from kugetsu_tui.commands.context import Context
from kugetsu_tui.engine.model import State
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.errors import UsageError

if TYPE_CHECKING:
    from kugetsu_tui.present import Selection


STATUS_LIMIT = 50  # rows `status` lists unless told otherwise


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.present import Selection, status_report

    now = time.time()
    ids = args.id
    if ids is not None and (missing := ids - ctx.store.known(ids)):
        raise UsageError(f"no task {min(missing)} (expected an id listed by `kugetsu status`)")
    states = args.state or frozenset(State)
    if args.json:
        # For scripts, --all (or naming the ids) lifts the default limit; --limit still holds.
        limit = args.limit if args.limit is not None else None if args.all or ids else STATUS_LIMIT
        return _print_status_json(ctx, Selection(states, ids, limit), now)
    recent = None if args.all or args.state else 5  # a person sees the last few successes
    selection = Selection(states, ids, args.limit or STATUS_LIMIT, recent_succeeded=recent)
    report = status_report(ctx.store, ctx.home, ctx.config, now, selection)
    report["config_error"] = report["config_error"] or ctx.config_broken
    _print_summary(report)
    if args.tree and report["tasks"]:
        _print_tree(report["tasks"], report["more"], now)
    else:
        _print_table(report, now)
    return 0


def _print_tree(rows: list[dict[str, Any]], more: int, now: float) -> None:
    """`status --tree`: who delegated what, each task indented under its parent."""
    from kugetsu_tui.present import lineage

    width = max(len(str(r["id"])) for r in rows)
    for depth, r in lineage(rows):
        line = _status_row(dict(r), width, now)
        note = f"  (child of {r['parent']})" if depth == 0 and r["parent"] is not None else ""
        print(f"{'  ' * depth}{'└ ' if depth else ''}{line}{note}")
    if more:
        print(f"… and {more} more (--limit N, --all, or --json --all for every task)")


def _print_table(report: dict[str, Any], now: float) -> None:
    """Live first (newest first), then the queue in admission order, then ended tasks
    (newest first): the report reads them in that order and no further than the limit."""
    shown = report["tasks"]
    if not shown:
        print('no tasks (add one: kugetsu add "...")')
        return
    width = max(len(str(r["id"])) for r in shown)
    nodes = any(r.get("node") for r in shown)  # a NODE column where agents ran on a Ray cluster
    node = f"{'NODE':<16} " if nodes else ""
    print(
        f"{'ID':>{width}}  {'STATE':<11} {'PRI':>3}  {'TRY':<5} {'AGENT':<9} {node}{'WHEN':<8} PROMPT / WHY"
    )
    for r in shown:
        print(_status_row(r, width, now, nodes))
    if report["more"]:
        print(f"… and {report['more']} more (--limit N, --all, or --json --all for every task)")


def _print_summary(report: dict[str, Any]) -> None:
    """The lines above the table: live against the cap, counts, the advisor, notes."""
    counts = report["counts"]
    sup = report["supervisor_pid"]
    parts = [
        f"live {report['live']}/{report['cap']}",
        f"queued {counts['queued']}",
        f"succeeded {counts['succeeded']}",
        f"failed {counts['failed']}",
    ]
    for extra in ("cancelled", "expired"):
        if counts[extra]:
            parts.append(f"{extra} {counts[extra]}")
    parts.append(f"supervisor pid {sup}" if sup else "no supervisor running")
    print(" · ".join(parts))
    if report["suggested_cap"] is not None and report["suggested_cap"] != report["cap"]:
        print(
            f"suggested cap {report['suggested_cap']} ({report['cap_mode']} mode): "
            f"{one_line(report['cap_reason'] or '')}"
        )
    if report.get("budget"):
        print(_budget_line(report["budget"]))
    for key in ("admission_blocked", "config_error"):
        if report[key]:
            print(f"note: {one_line(report[key])}")
    _print_slots(report)
    _print_nodes(report)


def _print_slots(report: dict[str, Any]) -> None:
    """A line per agent whose concurrency rate limits lowered: "claude: 2 of 4 slots,
    rate-limited 14:02" (a slot comes back per clean stretch of successes)."""
    for agent, info in sorted((report.get("agents") or {}).items()):
        slots = info["slots"]
        if slots["rate_limited_at"] is not None:
            when = time.strftime("%H:%M", time.localtime(_ts(slots["rate_limited_at"])))
            print(f"{printable(agent)}: {slots['effective']} of {slots['max']} slots, rate-limited {when}")


def _budget_line(budget: dict[str, Any]) -> str:
    """What the agents reported they spent against [budget], and the tasks that reported nothing."""
    cost, tokens = budget["cost_usd"], budget["tokens"]
    parts = []  # each measure with a limit, or reported without one
    if cost["limit"] is not None or cost["spent"] is not None:
        of = f" of ${cost['limit']:,.2f}" if cost["limit"] is not None else ""
        parts.append(f"${cost['spent'] or 0:,.2f}{of}")
    if tokens["limit"] is not None or tokens["spent"] is not None:
        of = f" of {tokens['limit']:,}" if tokens["limit"] is not None else ""
        parts.append(f"{tokens['spent'] or 0:,}{of} tokens")
    unmetered = budget["unmetered_tasks"]
    if unmetered:
        parts.append(f"{unmetered} task{'' if unmetered == 1 else 's'} unmetered (reported no usage)")
    return "budget: " + " · ".join(parts)


def _print_nodes(report: dict[str, Any]) -> None:
    """Under Ray: the cluster's figures the advisor used, then a line per node."""
    nodes = report.get("nodes")
    if not nodes:
        return
    from kugetsu_tui.engine.capacity import gib
    from kugetsu_tui.present import node_line

    machine = report.get("machine") or {}
    print(
        f"cluster: {len(nodes)} node{'' if len(nodes) == 1 else 's'}, {machine.get('slots', '?')} agent slots, "
        f"{machine.get('cpus', '?')} CPUs, {gib(machine.get('mem_total') or 0)} (Ray's figures; "
        "the suggested cap is the cluster's)"
    )
    for n in nodes:
        print(f"  {node_line(n)}")


def _print_status_json(ctx: Context, selection: Selection, now: float) -> int:
    """`status --json`, written a row at a time so that a long queue is never held in
    memory whole. One read transaction, so counts and rows agree."""
    from kugetsu_tui.present import matched, status_rows, status_summary

    out = sys.stdout
    with ctx.store.reading():
        summary, running = status_summary(ctx.store, ctx.home, ctx.config, now)
        summary["config_error"] = summary.get("config_error") or ctx.config_broken
        out.write(json.dumps(summary, ensure_ascii=False)[:-1] + ', "tasks": [')
        shown = 0
        rows = status_rows(ctx.store, ctx.config, summary, now, selection, supervisor=running, home=ctx.home)
        for row in rows:
            out.write((", " if shown else "") + json.dumps(row, ensure_ascii=False))
            shown += 1
        more = matched(ctx.store, summary, selection) - shown
    out.write(f'], "more": {more}}}\n')
    return 0


def _status_row(r: dict[str, Any], width: int, now: float, nodes: bool = False) -> str:
    """One task of `kugetsu status`; text from prompts, agents and paths made printable."""
    from kugetsu_tui.present import STATE_SYMBOL, elapsed, node_label, work_summary

    state = State(r["state"])
    when = ""
    kept = ""
    detail = one_line(r["prompt"])
    if state is State.QUEUED:
        when = f"#{r['position']}" if r["position"] else "held"
        detail = f"{detail[:40]:<40}  {one_line(r['wait_reason'] or '')}"
    elif state.is_live and r["started_at"]:
        when = elapsed(now - _ts(r["started_at"]))
        if r.get("needs_input"):
            detail = f"[needs input: {one_line(r['needs_input'])[:60]}] {detail}"
    elif r["ended_at"]:
        when = time.strftime("%H:%M", time.localtime(_ts(r["ended_at"])))
        if state is not State.SUCCEEDED and r["reason"]:
            detail = f"{detail[:40]:<40}  {one_line(r['reason'])}"
        elif work := work_summary(r):
            detail = f"{detail[:40]:<40}  {one_line(work)}"
        if r["worktree"] and os.path.isdir(r["worktree"]):
            kept = f"  [kept {printable(r['worktree'])}]"  # in full: the one thing to act on
    agent = printable(r["agent"])[:9]
    node = f"{printable(node_label(r.get('node')))[:16]:<16} " if nodes else ""
    return (
        f"{r['id']:>{width}}  {STATE_SYMBOL[state]} {state:<9} {r['priority']:>3}  "
        f"{r['attempts']}/{r['max_attempts']:<3} {agent:<9} {node}{when:<8} {detail[:110]}{kept}"
    )


def _ts(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text).timestamp()
