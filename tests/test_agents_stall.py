"""Stall detection: an attempt with no new output and an idle process tree for its agent's
stall_after is flagged (event, reason on the running task), or ended as a failure with
on_stall = "fail"; one that prints again is not flagged."""

from __future__ import annotations

from conftest import FAKE_AGENT, PY, Kugetsu, script, wait_until

from kugetsu_tui.engine.agents import Activity, stall_check


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
