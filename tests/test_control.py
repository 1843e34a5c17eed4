"""Actions from a second process while a supervisor runs: cancel, pause, resume, hold, cap."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import psutil

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import NewTask
from kugetsu_tui.engine.store import Store
from tests.helpers.harness import Kugetsu, script, wait_until


def _statuses(procs: list[psutil.Process]) -> set[str]:
    found = set()
    for proc in procs:
        try:
            status = proc.status()
        except psutil.NoSuchProcess:
            status = "gone"
        found.add("gone" if status == psutil.STATUS_ZOMBIE else status)
    return found


def test_cancel_pause_resume_from_another_process(kg: Kugetsu) -> None:
    kg.start_supervisor()
    task_id = kg.add(script(["spawn-children", 2, 60], ["hang", 60]))
    kg.wait_state(task_id, "running")
    # The agent, two children and two grandchildren, all in the agent's process group.
    tree = wait_until(lambda: (p := kg.agent_processes(children=True)) and len(p) == 5 and p, "5 processes")
    everything = kg.our_processes()  # those five and the sh wrapper

    paused = kg.cli("pause", str(task_id))
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == f"task {task_id}: paused\n"
    assert kg.task(task_id)["state"] == "paused"
    assert kg.status()["live"] == 1, "a paused task still holds its slot"
    wait_until(lambda: _statuses(everything) == {psutil.STATUS_STOPPED}, "the whole tree to be stopped")

    resumed = kg.cli("resume", str(task_id))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == f"task {task_id}: resumed\n"
    assert kg.task(task_id)["state"] == "running"
    wait_until(lambda: psutil.STATUS_STOPPED not in _statuses(everything), "the tree to run again")

    cancelled = kg.cli("cancel", str(task_id))
    assert cancelled.returncode == 0, cancelled.stderr
    task = kg.wait_state(task_id, "cancelled")
    assert (task["attempts"], task["reason"]) == (1, "cancelled")
    wait_until(lambda: _statuses(tree) == {"gone"}, "every process of the task to end")
    assert kg.our_processes() == []
    types = [e["type"] for e in kg.events(task_id)]
    assert "task_retrying" not in types and types[-1] == "task_cancelled", "a cancel is never retried"
    assert kg.status()["live"] == 0


def test_cancel_a_paused_agent_that_ignores_sigterm(kg: Kugetsu) -> None:
    kg.start_supervisor()
    task_id = kg.add(script(["ignore-term"], ["spawn-children", 1, 60], ["hang", 60]))
    kg.wait_state(task_id, "running")
    tree = wait_until(lambda: (p := kg.agent_processes(children=True)) and len(p) == 3 and p, "3 processes")
    assert kg.cli("pause", str(task_id)).returncode == 0
    assert kg.cli("cancel", str(task_id)).returncode == 0
    # SIGTERM is ignored (and the tree was stopped): SIGKILL after kill_grace ends it.
    task = kg.wait_state(task_id, "cancelled")
    assert task["attempts"] == 1
    wait_until(lambda: _statuses(tree) == {"gone"}, "every process of the task to end")
    assert kg.our_processes() == []


def test_cancel_ends_descendants_that_left_the_group(kg: Kugetsu) -> None:
    """A child that called setsid is out of the agent's process group, but still the task's."""
    kg.start_supervisor()
    task_id = kg.add(script(["escape", 60], ["hang", 60]))
    kg.wait_state(task_id, "running")
    tree = wait_until(lambda: (p := kg.agent_processes(children=True)) and len(p) == 2 and p, "2 processes")
    agent = next(p for p in tree if "FAKE_AGENT_CHILD" not in p.environ())
    escaped = next(p for p in tree if p is not agent)
    assert os.getpgid(escaped.pid) != os.getpgid(agent.pid), "the child left the group"
    assert kg.cli("cancel", str(task_id)).returncode == 0
    kg.wait_state(task_id, "cancelled")
    wait_until(lambda: _statuses(tree) == {"gone"}, "the agent and its escaped child to end")


def test_queued_tasks_cancel_hold_release_requeue(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 1})
    gate = kg.root / "gate"
    starts = kg.root / "starts"
    kg.start_supervisor()
    first = kg.add(script(["record", starts], ["wait-file", gate]))
    kg.wait_state(first, "running")
    dropped = kg.add(script(["record", starts]))
    parked = kg.add(script(["record", starts]))
    later = kg.add(script(["record", starts]))

    out = kg.cli("cancel", str(dropped))
    assert (out.returncode, out.stdout) == (0, f"task {dropped}: cancelled\n")
    assert kg.cli("hold", str(parked)).returncode == 0
    tasks = kg.tasks()
    assert tasks[dropped]["state"] == "cancelled" and tasks[dropped]["attempts"] == 0
    assert tasks[parked]["position"] is None and tasks[parked]["wait_reason"].startswith("held")
    assert tasks[later]["position"] == 1

    gate.touch()
    kg.wait_state(later, "succeeded")
    assert kg.task(parked)["state"] == "queued", "a held task does not start"
    assert kg.cli("release", str(parked)).returncode == 0
    kg.wait_state(parked, "succeeded")

    requeued = kg.cli("requeue", str(dropped))
    assert (requeued.returncode, requeued.stdout) == (0, f"task {dropped}: requeued\n")
    task = kg.wait_state(dropped, "succeeded")
    assert task["attempts"] == 1
    ran = [line for line in starts.read_text().splitlines()]
    assert len(ran) == 4, "the cancelled task ran only after it was requeued"


def test_release_starts_the_wait_afresh(tmp_path: Path) -> None:
    """A task held longer than expire_after must not expire the moment it is released."""
    home = Home(tmp_path / "home").ensure()
    store = Store(home.db_path)
    now = [1000.0]
    control = Control(home, store, clock=lambda: now[0])
    (task_id,) = control.add([NewTask(prompt="p", agent="fake", repo=None, no_worktree=True)])
    control.hold([task_id])
    now[0] = 1000.0 + 86400 * 3
    assert store.expired(now[0] - 3600) == [], "held tasks never expire"
    control.release([task_id])
    task = store.get(task_id)
    assert task is not None and not task.held and task.queued_at == now[0]
    assert store.expired(now[0] - 3600) == []
    assert [t.id for t in store.expired(now[0] + 1)] == [task_id], "it can still expire later"
    store.close()


def test_cap_is_written_to_the_config_keeping_the_other_keys(kg: Kugetsu) -> None:
    before = kg.write_config(queue={"retry_backoff": "7s"})
    out = kg.cli("cap", "5")
    assert out.returncode == 0, out.stderr
    after = tomllib.loads(kg.config_path.read_text())
    assert after["capacity"]["cap"] == 5
    after["capacity"]["cap"] = before["capacity"]["cap"]
    assert after == before
    assert kg.config_path.stat().st_mode & 0o777 == 0o600
    assert load_config(kg.config_path).cap == 5
    assert kg.status()["cap"] == 5
    assert any(e["type"] == "cap_changed" and e["cap"] == 5 for e in kg.events())


def test_cap_changes_reach_a_running_supervisor(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 1})
    gate = kg.root / "gate"
    kg.start_supervisor()
    ids = [kg.add(script(["wait-file", gate])) for _ in range(4)]
    kg.wait_state(ids[0], "running")
    assert kg.status()["live"] == 1

    raised = kg.cli("cap", "3")
    assert raised.returncode == 0, raised.stderr
    wait_until(lambda: kg.status()["live"] == 3, "3 live tasks after cap 3")
    wait_until(lambda: len(kg.agent_processes()) == 3, "3 agents in the process table")
    assert kg.status()["cap"] == 3

    # Lowering the cap never kills: the live set drains down to it.
    assert kg.cli("cap", "1").returncode == 0
    wait_until(lambda: kg.status()["cap"] == 1, "the supervisor to take cap 1")
    assert kg.status()["live"] == 3 and len(kg.agent_processes()) == 3
    gate.touch()
    for task_id in ids:
        kg.wait_state(task_id, "succeeded")
    starts = sorted((kg.task(i)["started_at"], i) for i in ids)
    assert starts[-1][1] == ids[3], "the fourth task started only after the others"
