"""The command's contract for scripts: `status --json`, events, and the demo."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

from conftest import Kugetsu, script

TASK_KEYS = {
    "id",
    "state",
    "prompt",
    "agent",
    "repo",
    "worktree",
    "priority",
    "attempts",
    "max_attempts",
    "exit_code",
    "created_at",
    "started_at",
    "ended_at",
    "position",
    "wait_reason",
}
STATES = {"queued", "starting", "running", "paused", "succeeded", "failed", "cancelled", "expired"}


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), f"{text} is not UTC"
    return when


def test_status_json_contract(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 2})
    gate = kg.root / "gate"
    done = kg.add(script(["ok"]))
    assert kg.run().returncode == 0
    kg.start_supervisor()
    running = [kg.add(script(["wait-file", gate])) for _ in range(2)]
    for task_id in running:
        kg.wait_state(task_id, "running")
    waiting = [kg.add(script(["ok"]), "--priority", str(p)) for p in (0, 3)]

    out = kg.cli("status", "--json")
    assert out.returncode == 0 and out.stderr == ""
    report = json.loads(out.stdout)
    assert (report["cap"], report["live"]) == (2, 2)
    assert set(report["counts"]) == STATES
    assert report["counts"]["running"] == 2 and report["counts"]["queued"] == 2
    assert report["counts"]["succeeded"] == 1
    tasks = {t["id"]: t for t in report["tasks"]}
    for task in tasks.values():
        assert set(task) >= TASK_KEYS
        assert _utc(task["created_at"])
    assert _utc(tasks[done]["started_at"]) <= _utc(tasks[done]["ended_at"])
    assert tasks[done]["exit_code"] == 0 and tasks[done]["position"] is None
    # The planner's view: the higher priority is next, and both say why they wait.
    assert [tasks[i]["position"] for i in waiting] == [2, 1]
    assert {tasks[i]["wait_reason"] for i in waiting} == {"cap full (2/2 live)"}
    for task_id in running:
        assert tasks[task_id]["state"] == "running" and tasks[task_id]["ended_at"] is None
    gate.touch()


def test_events_filters_and_lines(kg: Kugetsu) -> None:
    ok = kg.add(script(["ok"]))
    bad = kg.add(script(["exit", 2]), "--max-attempts", "1")
    assert kg.run().returncode == 1
    out = kg.cli("events", "--task", str(bad), "--type", "task_error")
    assert out.returncode == 0
    (line,) = out.stdout.splitlines()
    event = json.loads(line)
    assert (event["task_id"], event["type"], event["exit_code"]) == (bad, "task_error", 2)
    everything = [json.loads(line) for line in kg.cli("events").stdout.splitlines()]
    since = everything[3]["id"]
    later = [json.loads(line) for line in kg.cli("events", "--since", str(since)).stdout.splitlines()]
    assert later == everything[4:]
    assert {e["task_id"] for e in everything} >= {ok, bad}


def test_demo_headless_runs_the_real_engine(kg: Kugetsu) -> None:
    kg.env["KUGETSU_DEMO_SPEED"] = "0.02"
    where = kg.root / "demo"
    # Four tasks: the demo's first four prompts all succeed, so no retry backoff to wait out.
    out = kg.cli("demo", "--headless", "--tasks", "4", "--home", str(where), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout.splitlines()[-1]
    kg.home = where / "home"
    counts = kg.status()["counts"]
    assert counts["succeeded"] == sum(counts.values()) == 4
    assert not os.path.exists(kg.root / "work" / "CHANGES.md")
