"""Agent policy as the supervisor applies it, with the fake agent: stall detection (an
attempt with no new output and an idle tree for stall_after is flagged, or ended with
on_stall = "fail") and suspension after repeated fatal errors (the queue waits with the
reason, other agents run)."""

from __future__ import annotations

from kugetsu_tui.engine.agents import Activity, stall_check
from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, script, wait_until


def test_the_stall_rule() -> None:
    a, change = stall_check(None, log_size=10, cpu_percent=0.0, now=0.0, stall_after=5)
    assert (a, change) == (Activity(10, 0.0), None)
    a, change = stall_check(a, log_size=10, cpu_percent=0.5, now=4.0, stall_after=5)
    assert change is None and not a.stalled
    a, change = stall_check(a, log_size=10, cpu_percent=0.5, now=5.0, stall_after=5)
    assert change is True and a.stalled
    same, change = stall_check(a, log_size=10, cpu_percent=0.0, now=9.0, stall_after=5)
    assert change is None and same.stalled  # flagged once
    busy, change = stall_check(a, log_size=10, cpu_percent=80.0, now=10.0, stall_after=5)
    assert change is False and not busy.stalled  # busy again: the flag is cleared
    _, change = stall_check(busy, log_size=12, cpu_percent=None, now=99.0, stall_after=5)
    assert change is None  # output (or an unknown reading) is life


def _config(kg: Kugetsu, on_stall: str) -> None:
    kg.write_config(
        agents={"fake": {"command": [PY, FAKE_AGENT, "{prompt}"], "stall_after": "1s", "on_stall": on_stall}}
    )


def test_a_quiet_idle_agent_is_flagged_as_stalled(kg: Kugetsu) -> None:
    _config(kg, "warn")
    kg.start_supervisor()
    task_id = kg.add(script(["say", "starting"], ["sleep", 30]))
    wait_until(
        lambda: any(e["type"] == "task_stalled" for e in kg.events(task_id)),
        "a task_stalled event",
        timeout=30,
    )
    task = kg.task(task_id)
    assert task["state"] == "running"  # warn: it goes on
    assert task["reason"] == "stalled: no new output and under 1% CPU for 1s"


def test_on_stall_fail_ends_the_attempt_as_a_failure(kg: Kugetsu) -> None:
    _config(kg, "fail")
    kg.start_supervisor()
    task_id = kg.add(script(["sleep", 60]), "--max-attempts", "1")
    task = kg.wait_state(task_id, "failed", timeout=40)
    assert task["reason"] == "stalled: no new output and under 1% CPU for 1s"


def test_a_suspended_agents_queue_waits_with_the_reason_while_others_run(kg: Kugetsu) -> None:
    fake = {"command": [PY, FAKE_AGENT, "{prompt}"], "fatal": ["invalid api key"], "suspend_after": 2}
    kg.write_config(
        capacity={"cap": 1, "memory_reserve": 0},
        agents={"fake": fake, "other": {"command": [PY, FAKE_AGENT, "{prompt}"]}},
    )
    kg.start_supervisor()
    bad = script(["say", "Error: Invalid API key"], ["exit", 1])
    first, second, third = (kg.add(bad, "--max-attempts", "3") for _ in range(3))
    for task_id in (first, second):
        task = kg.wait_state(task_id, "failed", timeout=60)
        assert task["attempts"] == 1 and task["reason"] == "fatal: Error: Invalid API key (not retried)"
    other = kg.add(script(["ok"]), "--agent", "other")
    kg.wait_state(other, "succeeded", timeout=60)  # other agents keep running
    status = kg.status()
    waiting = {t["id"]: t for t in status["tasks"]}[third]
    assert (waiting["state"], waiting["attempts"]) == ("queued", 0)
    assert waiting["wait_reason"].startswith("agent fake suspended: Error: Invalid API key")
    assert status["suspended"] == {"fake": waiting["wait_reason"]}


def test_default_timeouts_from_the_agent_and_the_queue(kg: Kugetsu) -> None:
    kg.write_config(
        queue={"timeout": "1s", "max_attempts": 1},
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"], "timeout": "2s"},
            "slow": {"command": [PY, FAKE_AGENT, "{prompt}"]},
        },
    )
    by_queue = kg.add(script(["sleep", 60]), "--agent", "slow")
    by_agent = kg.add(script(["sleep", 60]))
    by_task = kg.add(script(["sleep", 60]), "--timeout", "3s")
    result = kg.run(timeout=90)
    assert result.returncode == 1
    tasks = kg.tasks()
    assert tasks[by_queue]["reason"] == "timed out after 1s"  # [queue] timeout
    assert tasks[by_agent]["reason"] == "timed out after 2s"  # [agents.fake] timeout over it
    assert tasks[by_task]["reason"] == "timed out after 3s"  # add --timeout over both
