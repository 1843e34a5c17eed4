"""Agent policy as the supervisor applies it, with the fake agent: stall detection (an
attempt with no new output and an idle tree for stall_after is flagged, or ended with
on_stall = "fail"), suspension after repeated fatal errors (the queue waits with the
reason, other agents run), and rate limits shaping concurrency (fewer at once after one,
slots given back by successes)."""

from __future__ import annotations

from typing import Any

from kugetsu_tui.engine.agents import RECOVER_AFTER, Activity, stall_check
from kugetsu_tui.engine.store import Store
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


# --- rate limits shape concurrency ------------------------------------------------------

LIMITED = "HTTP 429 Too Many Requests"


def _limited_config(kg: Kugetsu) -> None:
    kg.write_config(
        capacity={"cap": 4, "memory_reserve": 0},
        agents={"fake": {"command": [PY, FAKE_AGENT, "{prompt}"], "rate_limit": ["429"], "cooldown": "1s"}},
    )


class LiveSampler:
    """Reads status as the test waits, and keeps the most tasks seen live at once among
    those admitted since a given time."""

    def __init__(self, kg: Kugetsu) -> None:
        self.kg, self.most, self.since = kg, 0, 0.0

    def tasks(self) -> dict[int, dict[str, Any]]:
        tasks = self.kg.tasks()
        live = [t for t in tasks.values() if t["state"] in ("starting", "running", "paused")]
        admitted = sum(bool(t["started_at"]) and _epoch(t["started_at"]) >= self.since for t in live)
        self.most = max(self.most, admitted)
        return tasks

    def settled(self, ids: list[int]) -> None:
        wait_until(lambda: all(self.tasks()[i]["state"] == "succeeded" for i in ids), "them to succeed", 30)

    def until(self, ids: list[int], running: int, waiting: str | None = None) -> None:
        """Until `running` of ids run and the rest are queued, waiting for `waiting`."""

        def there() -> bool:
            tasks = self.tasks()
            states = [tasks[i]["state"] for i in ids]
            queued = [tasks[i]["wait_reason"] for i in ids if tasks[i]["state"] == "queued"]
            return (
                states.count("running") == running
                and len(queued) == len(ids) - running
                and (waiting is None or all(r == waiting for r in queued))
            )

        wait_until(there, f"{running} of {len(ids)} running, the rest waiting for {waiting}")


def _slots(kg: Kugetsu) -> dict[str, Any]:
    slots: dict[str, Any] = kg.status()["agents"]["fake"]["slots"]
    return slots


def test_a_rate_limit_halves_the_agents_slots_and_successes_give_them_back(kg: Kugetsu) -> None:
    _limited_config(kg)
    gate, hold, more = kg.root / "gate", kg.root / "hold", kg.root / "more"
    kg.start_supervisor()
    sample = LiveSampler(kg)
    # Rate limited the first time (all four at once), then each runs until `hold`.
    steps = (["wait-file", gate], ["say", LIMITED])
    hit = [
        kg.add(script(*steps, ["fail-then-ok", 1, kg.root / f"runs-{n}"], ["wait-file", hold]))
        for n in range(4)
    ]
    sample.until(hit, 4)
    gate.touch()
    slots = wait_until(lambda: (s := _slots(kg))["effective"] == 2 and s, "the limit halved")
    assert slots["max"] == 4 and slots["since"] == slots["rate_limited_at"] is not None
    episodes = [e for e in kg.events() if e["type"] == "cooldown_started"]
    assert len(episodes) == 1 and episodes[0]["slots"] == 2  # one episode, one halving
    sample.most, sample.since = 0, _epoch(slots["rate_limited_at"])  # live counted from the cut on
    # The cooldown ends: two run again, two wait for a slot although the cap has room.
    sample.until(hit, 2, "agent fake at its limit (2/2 live)")
    code, text, _ = kg.main("status")
    assert code == 0 and "fake: 2 of 4 slots, rate-limited " in text
    hold.touch()
    sample.settled(hit)
    assert sample.most == 2  # sampled all along, from the cut to the last of them
    # Four successes admitted after the cut: the third gave one slot back.
    assert RECOVER_AFTER == 3 and _slots(kg)["effective"] == 3
    later = [kg.add(script(["wait-file", more])) for _ in range(5)]
    sample.until(later, 3, "agent fake at its limit (3/3 live)")
    assert sample.most == 3
    assert "fake: 3 of 4 slots, rate-limited " in kg.main("status")[1]
    more.touch()
    sample.settled(later)
    slots = _slots(kg)  # two more successes, and it is back at the ceiling
    assert slots == {"effective": 4, "max": 4, "since": None, "rate_limited_at": None}
    assert "of 4 slots" not in kg.main("status")[1]


def test_a_restarted_supervisor_keeps_the_lowered_limit(kg: Kugetsu) -> None:
    _limited_config(kg)
    hold = kg.root / "hold"
    first = kg.start_supervisor()
    task_id = kg.add(script(["say", LIMITED], ["fail-then-ok", 1, kg.root / "runs"], ["wait-file", hold]))
    wait_until(lambda: _slots(kg)["effective"] == 2, "the limit halved")
    kg.stop_supervisor(first)
    second = kg.start_supervisor()
    began = max(e["ts"] for e in kg.events() if e["type"] == "supervisor_started" and e["pid"] == second.pid)

    def published() -> dict[str, Any] | None:
        store = Store(kg.home / "state.db")
        try:
            value, ts = store.meta().get("slots", (None, 0.0))
        finally:
            store.close()
        return value if ts >= _epoch(began) else None

    slots = wait_until(published, "the new supervisor to publish its limits")
    assert (slots["fake"]["effective"], slots["fake"]["max"]) == (2, 4)
    assert "fake: 2 of 4 slots" in kg.main("status")[1]
    hold.touch()
    kg.wait_state(task_id, "succeeded", timeout=30)


def _epoch(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text).timestamp()
