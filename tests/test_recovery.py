"""A supervisor that dies or stops while agents run: the next one adopts them or learns how
they ended. Nothing is forgotten, nothing runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.helpers.harness import PY, Kugetsu, script, wait_until

WORKERS = str(Path(__file__).with_name("race_workers.py"))


def _starts(path: Path) -> list[int]:
    return [int(json.loads(line)["task"]) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_killed_supervisor_is_succeeded_by_one_that_adopts_and_settles(kg: Kugetsu) -> None:
    """The first supervisor runs under a parent that never reaps orphans (a container's PID 1
    without an init): the agents it leaves behind end as zombies nobody collects."""
    kg.write_config(capacity={"cap": 2})
    starts, gate, ended_gate = kg.root / "starts", kg.root / "gate", kg.root / "ended-gate"
    launcher = subprocess.Popen(
        [PY, WORKERS, "subreaper", PY, "-m", "kugetsu_tui", "run", "--headless", "--forever"],
        env=kg.env,
        stdout=subprocess.DEVNULL,
    )
    kg.supervisors.append(launcher)  # ended at teardown, and its zombies with it
    first = wait_until(lambda: kg.status()["supervisor_pid"], "the first supervisor")
    running = kg.add(script(["record", starts], ["wait-file", gate]))
    ending = kg.add(script(["record", starts], ["wait-file", ended_gate], ["exit", 5]), "--max-attempts", "1")
    kg.wait_state(running, "running")
    kg.wait_state(ending, "running")
    queued = kg.add(script(["record", starts]))
    assert kg.task(queued)["state"] == "queued"
    agents = wait_until(lambda: (p := kg.agent_processes()) and len(p) == 2 and p, "two agents")

    os.kill(first, signal.SIGKILL)
    wait_until(lambda: kg.status()["supervisor_pid"] is None, "the lock to be free")
    # While no supervisor runs, one agent ends; its exit status is left in its run folder.
    ended_gate.touch()
    ending_pid = next(p for p in agents if str(ended_gate) in " ".join(p.cmdline()))
    wait_until(lambda: not ending_pid.is_running(), "the agent to end")
    wait_until(lambda: (kg.home / "runs" / str(ending) / "exit").exists(), "its exit file")
    assert kg.task(running)["state"] == "running", "the store still says live"

    kg.start_supervisor()
    task = kg.wait_state(ending, "failed")
    assert (task["exit_code"], task["attempts"]) == (5, 1)
    assert "task_adopted" in [e["type"] for e in kg.events(running)]
    assert kg.task(running)["state"] == "running"
    gate.touch()
    kg.wait_state(running, "succeeded")
    kg.wait_state(queued, "succeeded")
    assert sorted(_starts(starts)) == sorted([running, ending, queued]), "each ran exactly once"
    assert kg.task(running)["attempts"] == 1


def test_a_stopped_supervisor_leaves_agents_running_for_the_next(kg: Kugetsu) -> None:
    starts, gate = kg.root / "starts", kg.root / "gate"
    first = kg.start_supervisor()
    task_id = kg.add(script(["record", starts], ["wait-file", gate]))
    kg.wait_state(task_id, "running")
    assert kg.stop_supervisor(first) == 0
    assert kg.status()["supervisor_pid"] is None
    assert len(kg.agent_processes()) == 1, "stopping the supervisor does not stop the agents"
    stopped = [e for e in kg.events() if e["type"] == "supervisor_stopped"]
    assert stopped and stopped[-1]["live_left_running"] == 1

    kg.start_supervisor()
    gate.touch()
    task = kg.wait_state(task_id, "succeeded")
    assert task["attempts"] == 1 and _starts(starts) == [task_id]
