"""The supervisor dies, is stopped, or the machine reboots: every task still ends exactly once.

Every test here does the damage for real: SIGKILL to a live supervisor at random points,
SIGTERM/SIGINT/SIGHUP as a shell or a closing terminal sends them, agents killed along with
their wrapper as a reboot would. A ledger file that every agent appends its task id to
(one O_APPEND write) is the ground truth of what ran, independent of the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.harness import PY, WAIT, Kugetsu, ended, script, wait_until

# A light agent for the many-task run: a shell that records its task id, then works a
# moment. `$1` is the ledger; one printf with >> is one O_APPEND write.
LEDGER_AGENT = 'printf "%s\\n" "$KUGETSU_TASK_ID" >> "$1"; sleep 0.1'


def _ledger(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line) for line in path.read_text().split())


def _starts(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(json.loads(line)["task"]) for line in path.read_text().splitlines()]


def _add_many(kg: Kugetsu, n: int) -> list[int]:
    lines = "".join(json.dumps({"prompt": f"task {i}", "no_worktree": True}) + "\n" for i in range(n))
    added = kg.cli("add", "--from-file", "-", input=lines)
    assert added.returncode == 0, added.stderr
    return [int(i) for i in added.stdout.split()]


def test_kill_9_at_random_points_loses_nothing_and_runs_nothing_twice(kg: Kugetsu) -> None:
    """100 short tasks; the supervisor is SIGKILLed again and again (while it starts, while it
    reconciles, while it admits and settles) and restarted, until all are done."""
    ledger = kg.root / "ledger"
    kg.write_config(
        capacity={"cap": 4},
        agents={"ledger": {"command": ["sh", "-c", LEDGER_AGENT, "agent", str(ledger), "{prompt}"]}},
        default_agent="ledger",
    )
    ids = _add_many(kg, 100)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    kills = 0
    for _ in range(40):
        if all(t["state"] == "succeeded" for t in kg.tasks().values()):
            break
        sup = kg.popen("run", "--headless", "--forever")
        if rng.random() < 0.5:
            # Somewhere in its life, start-up and reconciliation included.
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            wait_until(lambda s=sup: kg.status()["supervisor_pid"] == s.pid, "the supervisor to serve")
            time.sleep(rng.uniform(0.0, 0.3))
        sup.send_signal(signal.SIGKILL)
        sup.wait(10)
        kills += 1
    assert kills >= 3, f"seed {seed}: the run ended before the supervisor was killed often enough"

    # The last one runs the rest to the end; its exit code says all succeeded.
    final = kg.run(timeout=60)
    assert final.returncode == 0, f"seed {seed}: {final.stderr}"

    ran = _ledger(ledger)
    twice = sorted(i for i, n in ran.items() if n > 1)
    missing = sorted(set(ids) - set(ran))
    assert not twice, f"seed {seed}: ran more than once: {twice}"
    assert not missing, f"seed {seed}: never ran: {missing}"
    assert set(ran) == set(ids)
    tasks = kg.tasks()
    assert {tasks[i]["state"] for i in ids} == {"succeeded"}, f"seed {seed}"
    assert {tasks[i]["attempts"] for i in ids} == {1}, f"seed {seed}: an interruption spent an attempt"
    completed = Counter(e["task_id"] for e in kg.events() if e["type"] == "task_completed")
    assert completed == Counter(ids), f"seed {seed}: each task completed exactly once in the log"
    wait_until(lambda: not kg.our_processes(), "every agent to be gone")


def _start_in_own_session(kg: Kugetsu, *args: str) -> subprocess.Popen[bytes]:
    """A supervisor as a terminal starts it: a process group of its own, which the terminal
    signals as a whole when it closes."""
    proc = subprocess.Popen(
        [PY, "-m", "kugetsu_tui", "run", "--headless", "--forever", *args],
        env=kg.env,
        cwd=kg.work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kg.supervisors.append(proc)
    wait_until(lambda: kg.status()["supervisor_pid"] == proc.pid, "the supervisor to serve")
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_admitting_leaves_agents_running_and_exits_0(kg: Kugetsu, sig: signal.Signals) -> None:
    """SIGHUP goes to the supervisor's whole process group, as when its terminal closes;
    the agents live in sessions of their own and never see it."""
    kg.write_config(capacity={"cap": 1})
    starts, gate = kg.root / "starts", kg.root / "gate"
    sup = _start_in_own_session(kg)
    running = kg.add(script(["record", starts], ["wait-file", gate]))
    kg.wait_state(running, "running")
    waiting = kg.add(script(["record", starts]))
    (agent,) = wait_until(kg.agent_processes, "the agent")

    if sig is signal.SIGHUP:
        os.killpg(sup.pid, sig)
    else:
        sup.send_signal(sig)
    assert sup.wait(20) == 0
    assert kg.status()["supervisor_pid"] is None, "the lock is released"
    assert agent.is_running() and not ended(agent.pid), "the agent keeps running"
    assert kg.task(running)["state"] == "running"
    assert (kg.task(waiting)["state"], kg.task(waiting)["attempts"]) == ("queued", 0)
    stopped = [e for e in kg.events() if e["type"] == "supervisor_stopped"]
    assert stopped[-1]["live_left_running"] == 1

    kg.start_supervisor()
    gate.touch()
    kg.wait_state(running, "succeeded")
    kg.wait_state(waiting, "succeeded")
    assert _starts(starts) == [running, waiting], "each ran once, in order"
    assert kg.task(running)["attempts"] == 1


def test_stop_agents_ends_them_and_requeues_without_spending_an_attempt(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 2}, queue={"kill_grace": "0.5s", "max_attempts": 1})
    starts, gate = kg.root / "starts", kg.root / "gate"
    sup = kg.start_supervisor("--stop-agents")
    polite = kg.add(script(["record", starts], ["wait-file", gate]))
    stubborn = kg.add(
        script(["ignore-term"], ["record", starts], ["spawn-children", 1, 60], ["wait-file", gate])
    )
    kg.wait_state(polite, "running")
    kg.wait_state(stubborn, "running")
    wait_until(lambda: len(_starts(starts)) == 2, "both agents to start")

    sup.send_signal(signal.SIGTERM)
    assert sup.wait(20) == 0
    assert kg.status()["supervisor_pid"] is None
    assert kg.our_processes() == [] or all(ended(p.pid) for p in kg.our_processes()), "no agent is left"
    for task_id in (polite, stubborn):
        task = kg.task(task_id)
        assert (task["state"], task["attempts"]) == ("queued", 0), task
        assert "task_interrupted" in [e["type"] for e in kg.events(task_id)]

    gate.touch()
    assert kg.run().returncode == 0
    for task_id in (polite, stubborn):
        assert (kg.task(task_id)["state"], kg.task(task_id)["attempts"]) == ("succeeded", 1)


def _reboot(kg: Kugetsu, sup: subprocess.Popen[bytes]) -> None:
    """What a power cut does: the supervisor and every agent and its wrapper die at once,
    and no exit status is written (SIGKILL to a whole group lands on all of it at once)."""
    sup.send_signal(signal.SIGKILL)
    sup.wait(10)
    groups = set()
    for proc in kg.our_processes():
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(proc.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    wait_until(lambda: all(ended(p.pid) for p in kg.our_processes()), "every agent to die")


@pytest.mark.parametrize("on_interrupt", ["requeue", "fail"])
def test_an_agent_gone_without_an_exit_status_is_interrupted(kg: Kugetsu, on_interrupt: str) -> None:
    kg.write_config(queue={"on_interrupt": on_interrupt, "max_attempts": 2})
    starts, gate = kg.root / "starts", kg.root / "gate"
    sup = kg.start_supervisor()
    task_id = kg.add(script(["record", starts], ["wait-file", gate]))
    kg.wait_state(task_id, "running")
    wait_until(lambda: _starts(starts), "the agent to start")
    _reboot(kg, sup)
    assert not (kg.home / "runs" / str(task_id) / "exit").exists()
    assert kg.task(task_id)["state"] == "running", "the store still says live"

    gate.touch()  # the next attempt, if any, ends at once
    kg.start_supervisor()
    if on_interrupt == "fail":
        task = kg.wait_state(task_id, "failed")
        assert task["attempts"] == 1 and "on_interrupt = fail" in task["reason"]
        assert _starts(starts) == [task_id], "not run again"
    else:
        task = kg.wait_state(task_id, "succeeded")
        assert task["attempts"] == 2, "a vanished attempt counts (its agent may have done work)"
        assert _starts(starts) == [task_id, task_id]
    interrupted = [e for e in kg.events(task_id) if e["type"] == "task_interrupted"]
    assert len(interrupted) == 1


def test_a_recycled_pid_is_not_mistaken_for_the_agent(kg: Kugetsu) -> None:
    """After a reboot the stored pid may belong to another process, even one leading a
    process group of its own: pid and start time must both match. The stranger is neither
    adopted (waited for) nor signalled, and the task runs again."""
    starts, gate = kg.root / "starts", kg.root / "gate"
    sup = kg.start_supervisor()
    task_id = kg.add(script(["record", starts], ["wait-file", gate]))
    kg.wait_state(task_id, "running")
    wait_until(lambda: _starts(starts), "the agent to start")
    _reboot(kg, sup)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        db = sqlite3.connect(kg.home / "state.db")
        with db:
            db.execute("UPDATE tasks SET pid = ? WHERE id = ?", (stranger.pid, task_id))
        db.close()
        gate.touch()
        kg.start_supervisor()
        task = kg.wait_state(task_id, "succeeded")
        assert task["attempts"] == 2
        types = [e["type"] for e in kg.events(task_id)]
        assert "task_adopted" not in types and types.count("task_interrupted") == 1
        assert stranger.poll() is None, "the unrelated process was left alone"
    finally:
        stranger.kill()
        stranger.wait()


def test_an_agent_killed_by_the_oom_killer_is_a_failed_attempt_that_retries(kg: Kugetsu) -> None:
    """The kernel's OOM killer sends SIGKILL to the largest process: the agent, not its
    tiny wrapper, which records the death and lets the attempt be retried."""
    starts, gate = kg.root / "starts", kg.root / "gate"
    kg.start_supervisor()
    task_id = kg.add(script(["record", starts], ["wait-file", gate]), "--max-attempts", "2")
    kg.wait_state(task_id, "running")
    wait_until(lambda: _starts(starts), "the agent to start")
    (agent,) = kg.agent_processes()
    agent.kill()
    retry = wait_until(
        lambda: next((e for e in kg.events(task_id) if e["type"] == "task_retrying"), None), "a retry"
    )
    assert retry["exit_code"] == 137 and "SIGKILL" in retry["reason"]
    gate.touch()
    task = kg.wait_state(task_id, "succeeded")
    assert task["attempts"] == 2 and _starts(starts) == [task_id, task_id]


def test_logs_follow_goes_on_after_a_max_log_cut(kg: Kugetsu) -> None:
    """`kugetsu logs -f` reads on while the supervisor cuts the log under it: what the agent
    prints after the cut still reaches the follower, and the cut itself is said."""
    gate = kg.root / "gate"
    kg.write_config(queue={"max_log": "64KiB"})
    kg.start_supervisor()
    lines = 100_000  # about 0.9 MB: the follower reads far past where the cut leaves the end
    task_id = kg.add(script(["print-lines", lines], ["wait-file", gate], ["say", "after the cut"]))
    log = kg.home / "runs" / str(task_id) / "log"
    follower = kg.popen("logs", "-f", str(task_id))
    wait_until(lambda: f"line {lines - 1}\n" in kg.output(follower)[0], "the follower to read the burst")
    wait_until(lambda: log.stat().st_size <= 64 * 1024, "the log to be cut while the agent runs")
    gate.touch()
    follower.wait(WAIT)
    shown = kg.output(follower)[0]
    assert follower.returncode == 0
    # (then only the attempt's closing line)
    assert re.search(r"after the cut\n── exit code 0 · [^\n]* ──\n\Z", shown), shown[-300:]
    assert shown.count("after the cut\n") == 1 and shown.count(f"line {lines - 1}\n") == 1


def test_logs_follow_shows_the_cut_note_when_unseen_output_was_cut(tmp_path: Path) -> None:
    """A reader behind the cut gets the supervisor's note and everything kept, once; one past
    it gets only what is new; a log replaced by another file is read from its start."""
    from kugetsu_tui.engine.logs import LogTail
    from kugetsu_tui.engine.runner import cap_log

    log = tmp_path / "log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(10)))
    behind, ahead = LogTail(log), LogTail(log)
    assert behind.read() == log.read_bytes()  # reads only the start
    with open(log, "ab") as f:
        f.write(b"".join(b"line %d\n" % i for i in range(10, 1000)))
    assert ahead.read() == log.read_bytes()
    assert cap_log(log, 2000)
    with open(log, "ab") as f:
        f.write(b"after the cut\n")
    kept = log.read_bytes()
    assert behind.read() == kept and kept.startswith(b"--- kugetsu: ")
    assert ahead.read() == b"after the cut\n"
    log.unlink()
    log.write_bytes(b"a new file\n")
    assert ahead.read() == b"a new file\n"
