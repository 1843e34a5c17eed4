"""The budget pool, with a real supervisor, a real store and fake agents that print
claude-style stream-json with their usage: once what the agents reported reaches
`[budget]`, nothing new is admitted (queued tasks wait with the reason, no attempt spent)
while live agents run on; raising it resumes; an agent that reports nothing is unmetered;
every attempt's report counts (retries too); `status` shows it; bad values are one-line
errors."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import AgentUsage, NewTask
from kugetsu_tui.engine.store import Store
from kugetsu_tui.present import status_summary
from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, script, wait_until


def reported(cost: float | None, tokens_in: int = 100, tokens_out: int = 20) -> str:
    """The closing event of claude's stream-json: its final message, usage and cost."""
    event: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "done",
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }
    if cost is not None:
        event["total_cost_usd"] = cost
    return json.dumps(event)


def _config(kg: Kugetsu, cap: int = 2, **budget: Any) -> None:
    """`fake` reports its usage as claude does; `plain` reports none."""
    kg.write_config(
        capacity={"cap": cap, "memory_reserve": 0},
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"], "output": "claude-stream-json"},
            "plain": {"command": [PY, FAKE_AGENT, "{prompt}"]},
        },
        **({"budget": budget} if budget else {}),
    )


def _types(kg: Kugetsu, task_id: int) -> list[str]:
    return [e["type"] for e in kg.events(task_id)]


def test_a_spent_budget_stops_admission_live_agents_run_on_and_raising_it_resumes(
    kg: Kugetsu, tmp_path: Path
) -> None:
    _config(kg, cost_usd=0.05)
    gate = tmp_path / "gate"
    live = kg.add(script(["wait-file", gate], ["say", reported(0.01)]))
    spender = kg.add(script(["say", reported(0.06)]))
    waiting = kg.add(script(["say", reported(0.01)]))
    kg.start_supervisor()
    kg.wait_state(spender, "succeeded")
    reason = "budget spent: $0.06 of $0.05"
    task = wait_until(
        lambda: (t := kg.task(waiting))["wait_reason"] == reason and t, "the queue to wait for the budget"
    )
    # Fail closed: untouched, no attempt spent, never dequeued.
    assert (task["state"], task["attempts"]) == ("queued", 0)
    assert "task_dequeued" not in _types(kg, waiting)
    status = kg.status()
    assert status["admission_blocked"] == reason
    assert status["budget"] == {
        "cost_usd": {"spent": 0.06, "limit": 0.05},
        "tokens": {"spent": 120, "limit": None},
        "unmetered_tasks": 0,
    }
    # What was live when the budget ran out is not ended: it finishes, and its spend counts.
    assert kg.task(live)["state"] == "running"
    gate.touch()
    kg.wait_state(live, "succeeded")
    wait_until(lambda: kg.status()["budget"]["cost_usd"]["spent"] == 0.07, "the live agent's report")
    assert kg.task(waiting)["wait_reason"] == "budget spent: $0.07 of $0.05"
    assert kg.task(waiting)["attempts"] == 0
    # A raised budget (hot reload) admits again.
    _config(kg, cost_usd=1.0)
    kg.wait_state(waiting, "succeeded")
    status = kg.status()
    assert status["admission_blocked"] is None
    assert status["budget"]["cost_usd"] == {"spent": 0.08, "limit": 1.0}


def test_a_token_budget_and_unmetered_agents(kg: Kugetsu) -> None:
    _config(kg, cap=1, tokens=1000)
    unmetered = kg.add(script(["say", "no usage here"]), "--agent", "plain")
    metered = kg.add(script(["say", reported(None, 900, 200)]))
    blocked = kg.add(script(["ok"]), "--agent", "plain")
    result = kg.run(timeout=60)
    # A non-forever run ends once nothing can start without a person, and says why.
    assert result.returncode == 0, result.stderr
    assert "left waiting: 1 task: budget spent: 1,100 of 1,000 tokens" in result.stdout
    tasks = kg.tasks()
    assert tasks[unmetered]["state"] == tasks[metered]["state"] == "succeeded"
    assert (tasks[unmetered]["usage"] or {}).get("input_tokens") is None  # reported none: not a zero
    assert (tasks[blocked]["state"], tasks[blocked]["attempts"]) == ("queued", 0)
    budget = kg.status()["budget"]
    # The reported tokens count; no cost was reported by anyone: null, not a made-up zero.
    assert budget == {
        "cost_usd": {"spent": None, "limit": None},
        "tokens": {"spent": 1100, "limit": 1000},
        "unmetered_tasks": 1,
    }
    code, out, err = kg.main("status")
    assert code == 0, err
    line = "budget: 1,100 of 1,000 tokens · 1 task unmetered (reported no usage)"
    assert line in out.splitlines()


def test_every_attempts_report_counts(kg: Kugetsu, tmp_path: Path) -> None:
    """A task's reported usage is its last attempt's; the budget counts each attempt's."""
    _config(kg, cost_usd=10.0)
    counter = tmp_path / "runs"
    task_id = kg.add(script(["say", reported(0.25)], ["fail-then-ok", 1, counter]))
    assert kg.run(timeout=60).returncode == 0
    task = kg.task(task_id)
    assert (task["state"], task["attempts"], task["usage"]["cost_usd"]) == ("succeeded", 2, 0.25)
    assert kg.status()["budget"]["cost_usd"] == {"spent": 0.5, "limit": 10.0}


def test_an_attempt_given_back_keeps_what_it_spent(tmp_path: Path) -> None:
    """A rate-limited attempt is given back, so the next one has its number: both reports
    count (the ledger tells attempts apart by when they were admitted)."""
    from kugetsu_tui.engine.model import EventType, State

    store = Store(tmp_path / "state.db")
    (task_id,) = store.add([NewTask(prompt="p", agent="claude", repo=None, no_worktree=True)], 1.0)
    for started in (10.0, 20.0):
        (task,) = store.admit(1, started)
        assert task.attempts == 1
        store.update(task_id, started + 1, reported_usage=AgentUsage(100, 10, 0.5))
        store.transition(task_id, State.QUEUED, now=started + 2, event=EventType.TASK_RETRYING, attempts=0)
    spent = store.spent()
    assert (spent.cost_usd, spent.tokens) == (1.0, 220)
    store.close()


def test_status_without_a_budget_reads_nothing_of_it(kg: Kugetsu) -> None:
    _config(kg)
    kg.add(script(["say", reported(0.5)]))
    assert kg.run(timeout=60).returncode == 0
    assert kg.status()["budget"] is None
    code, out, _ = kg.main("status")
    assert code == 0 and "budget" not in out
    home = Home(kg.home)
    store = Store(home.db_path)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        summary, _ = status_summary(store, home, load_config(home.config_path), time.time())
    finally:
        store.db.set_trace_callback(None)
        store.close()
    assert summary["budget"] is None
    assert not [s for s in statements if "FROM spend" in s or "reported_usage IS NULL" in s], statements


def test_an_older_home_keeps_what_its_tasks_reported(tmp_path: Path) -> None:
    """A store made before the spend ledger: its tasks' reports are carried into it."""
    path = tmp_path / "state.db"
    store = Store(path)
    now = time.time()
    first, second = store.add([NewTask("a", "fake", None), NewTask("b", "fake", None)], now)
    store.admit(2, now)
    store.update(first, now, reported_usage=AgentUsage(10, 5, 0.5))
    store.update(second, now, reported_usage=AgentUsage(7, None, None))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE spend")
    db.execute("PRAGMA user_version = 8")
    db.commit()
    db.close()
    store = Store(path)
    try:
        spent = store.spent()
        assert (spent.cost_usd, spent.tokens) == (0.5, 22)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"cost_usd": -1.0}, "[budget] cost_usd: expected an amount in US dollars above 0 like 20.0"),
        ({"cost_usd": 0}, "[budget] cost_usd: expected an amount in US dollars above 0"),
        ({"cost_usd": "20"}, "[budget] cost_usd: expected an amount in US dollars above 0"),
        ({"cost_usd": True}, "[budget] cost_usd: expected an amount in US dollars above 0"),
        ({"tokens": -5}, "[budget] tokens: expected a whole number from 1 to 1000000000000000"),
        ({"tokens": 1.5}, "[budget] tokens: expected a whole number from 1 to"),
        ({"limit": 3}, "unknown key [budget] limit (expected one of: cost_usd, tokens)"),
    ],
)
def test_a_bad_budget_is_a_one_line_error(kg: Kugetsu, budget: dict[str, Any], expected: str) -> None:
    _config(kg, **budget)
    result = kg.cli("add", "--no-worktree", "--agent", "fake", "anything")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert kg.status()["counts"]["queued"] == 0  # nothing queued
