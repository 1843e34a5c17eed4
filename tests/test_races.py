"""Many processes against one home at once: admission, enqueueing and the supervisor lock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kugetsu_tui.engine.model import NewTask
from kugetsu_tui.engine.store import Store
from tests.helpers.harness import PY, Kugetsu, open_barrier, wait_until

WORKERS = str(Path(__file__).with_name("race_workers.py"))


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, WORKERS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 60) -> list[dict[str, object]]:
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize("limit", [1, 0], ids=["one-at-a-time", "fill-all-free-slots"])
def test_racing_admit_never_exceeds_the_cap(tmp_path: Path, limit: int) -> None:
    """Store.admit alone (no supervisor, no flock) from 8 processes keeps live <= cap."""
    cap, n_tasks, n_workers = 3, 120, 8
    db = tmp_path / "state.db"
    store = Store(db)
    ids = store.add(
        [NewTask(prompt=f"t{i}", agent="fake", repo=None, no_worktree=True) for i in range(n_tasks)], 1.0
    )
    barrier = tmp_path / "go"
    procs = [_start(["admit", str(db), str(barrier), str(cap), str(limit)]) for _ in range(n_workers)]
    open_barrier(barrier, n_workers)  # they all opened the store and wait
    results = _finish(procs)

    admitted = [task_id for r in results for task_id in r["admitted"]]  # type: ignore[attr-defined]
    assert sorted(admitted) == ids, "every task admitted exactly once"
    for task in store.tasks():
        assert (str(task.state), task.attempts) == ("succeeded", 1)

    # Replay the event log, which is written in the same transaction as each change: the
    # number of live tasks after every committed transaction.
    live = peak = 0
    for event in store.events():
        if event.type == "task_dequeued":
            live += 1
        elif event.type == "task_completed":
            live -= 1
        assert live <= cap, f"{live} live tasks after event {event.id}, cap {cap}"
        peak = max(peak, live)
    assert live == 0
    assert peak == cap, "the cap was reached, so the check above meant something"
    store.close()


def test_eight_processes_adding_fifty_tasks_each(kg: Kugetsu) -> None:
    """Started on a home that does not exist yet: creating it is part of the race."""
    home = kg.root / "fresh-home"
    barrier = kg.root / "go"
    procs = [
        _start(["add", str(home), str(barrier), str(kg.work), "50", f"w{k}"], env=kg.env) for k in range(8)
    ]
    open_barrier(barrier, len(procs))
    results = _finish(procs)

    ids = [i for r in results for i in r["ids"]]  # type: ignore[attr-defined]
    assert len(ids) == 400 and len(set(ids)) == 400
    for r in results:
        assert r["ids"] == sorted(r["ids"]), "one process's tasks keep their order"  # type: ignore[type-var]

    kg.home = home
    tasks = kg.tasks()
    assert sorted(tasks) == sorted(ids)
    for r in results:
        for i, task_id in enumerate(r["ids"]):  # type: ignore[arg-type]
            assert tasks[task_id]["prompt"] == f"{r['tag']} task {i}"
            assert tasks[task_id]["state"] == "queued"
    positions = sorted(t["position"] for t in tasks.values())
    assert positions == list(range(1, 401))
    queued_events = [e for e in kg.events() if e["type"] == "task_queued"]
    assert sorted(e["task_id"] for e in queued_events) == sorted(ids)


@pytest.mark.parametrize("racers", [2, 4])
def test_supervisors_started_at_once(kg: Kugetsu, racers: int) -> None:
    """Exactly one of them serves; every other one refuses in one line naming its pid."""
    barrier = kg.root / "go"
    procs = [
        subprocess.Popen(
            [PY, WORKERS, "supervise", str(kg.home), str(barrier)],
            env=kg.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(racers)
    ]
    try:
        open_barrier(barrier, racers)

        def all_but_one_gave_up() -> list[subprocess.Popen[str]] | None:
            done = [p for p in procs if p.poll() is not None]
            return done if len(done) == racers - 1 else None

        losers = wait_until(all_but_one_gave_up, f"{racers - 1} supervisors to give up")
        (winner,) = [p for p in procs if p not in losers]
        for loser in losers:
            assert loser.returncode == 2
            err = loser.stderr.read() if loser.stderr else ""
            lines = err.strip().splitlines()
            assert len(lines) == 1, err
            assert f"pid {winner.pid}" in lines[0] and "already running" in lines[0]
            assert "Traceback" not in err
        # The other one serves: it holds the lock and carries out work.
        assert winner.poll() is None
        assert kg.status()["supervisor_pid"] == winner.pid
        task_id = kg.add("ok")
        kg.wait_state(task_id, "succeeded")
        starts = [e for e in kg.events() if e["type"] == "supervisor_started"]
        assert [e["pid"] for e in starts] == [winner.pid]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(20)
            if proc.stderr:
                proc.stderr.close()


def test_a_second_supervisor_refuses_while_one_runs(kg: Kugetsu) -> None:
    first = kg.start_supervisor()
    second = kg.run(timeout=30)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and f"pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.poll() is None
    assert sys.executable  # the refusal came from the real CLI in its own process
