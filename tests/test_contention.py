"""Races between the supervisor and people (or scripts) acting at the same instant.

Each race is run many times in a loop with fast agents. What the agents did is read
from a ledger they append to and from the OS process table, never from kugetsu-tui's
own counters. (4 supervisors at once, and 8 processes adding, are in test_races.py.)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from kugetsu_tui import cli
from tests.helpers.harness import PY, Kugetsu, ended, open_barrier, wait_until

ROUNDS = 20

# sh agents (a few ms each, unlike an interpreter start): record "start ID" and "end ID"
# in the ledger ($1), each line one O_APPEND write.
LEDGER_OK = 'printf "start %s\\n" "$KUGETSU_TASK_ID" >> "$1"; sleep 0.02; printf "end %s\\n" "$KUGETSU_TASK_ID" >> "$1"'
LEDGER_FAIL = (
    'printf "start %s\\n" "$KUGETSU_TASK_ID" >> "$1"; printf "end %s\\n" "$KUGETSU_TASK_ID" >> "$1"; exit 1'
)
# Exits as soon as the gate file ($2) exists.
GATED = 'printf "start %s\\n" "$KUGETSU_TASK_ID" >> "$1"; while [ ! -e "$2" ]; do sleep 0.005; done'


def ledger(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(kind, int(task)) for kind, task in (line.split() for line in path.read_text().splitlines())]


def starts(path: Path) -> Counter[int]:
    return Counter(task for kind, task in ledger(path) if kind == "start")


def live_agents(marker: str) -> int:
    """Agents alive now whose wrapper's command line names `marker` (this test's ledger):
    their process groups, since a wrapper about to start its agent is briefly two
    processes (fork, then exec)."""
    groups = set()
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if cmd[3:4] == ["kugetsu-agent"] and marker in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(proc.pid))
    return len(groups)


class LiveSampler:
    """Counts live agents in the OS process table in the background; keeps the peak."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, live_agents(self.marker))
            self.samples += 1
            time.sleep(0.005)

    def __enter__(self) -> LiveSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def quiet_main(kg: Kugetsu, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--home", str(kg.home), *args])
    return code, out.getvalue(), err.getvalue()


def task_alive(kg: Kugetsu, task_id: int) -> list[psutil.Process]:
    """Processes of this task still running (by the marker in their environment)."""
    found = []
    for proc in kg.our_processes():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("KUGETSU_TASK_ID") == str(task_id) and not ended(proc.pid):
                found.append(proc)
    return found


def agents(kg: Kugetsu, ledger_path: Path, **extra: Any) -> None:
    kg.write_config(
        capacity={"cap": 3},
        queue={"kill_grace": "0.5s", "retry_backoff": "0.05s"},
        agents={
            "ok": {"command": ["sh", "-c", LEDGER_OK, "agent", str(ledger_path), "{prompt}"]},
            "fail": {"command": ["sh", "-c", LEDGER_FAIL, "agent", str(ledger_path), "{prompt}"]},
            "gated": {"command": ["sh", "-c", GATED, "agent", str(ledger_path), "{prompt}"]},
        },
        default_agent="ok",
        **extra,
    )


# 16 processes at once, each adding tasks and cancelling some of its own, in ROUNDS rounds.
ADD_AND_CANCEL = """
import contextlib, io, json, os, random, sys, time
from kugetsu_tui import cli
home, barrier, work, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(os.getpid())
def main(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--home", home, *args])
    return code, out.getvalue(), err.getvalue()
open(f"{barrier}.ready-{os.getpid()}", "w").close()
while not os.path.exists(barrier):
    time.sleep(0.002)
added, cancels = [], []
for i in range(rounds):
    code, out, err = main("add", "--no-worktree", "--repo", work, f"pid {os.getpid()} round {i}")
    if code != 0:
        sys.exit(f"add failed: {err}")
    added.append(int(out))
    if rng.random() < 0.5:
        victim = rng.choice(added)
        code, out, err = main("cancel", str(victim))
        if code not in (0, 2) or (code == 2 and "only" not in err):
            sys.exit(f"cancel {victim}: {code} {err}")
        cancels.append([victim, code, (out + err).strip()])
print(json.dumps({"added": added, "cancels": cancels}))
"""


def test_16_processes_adding_and_cancelling_at_once(kg: Kugetsu) -> None:
    path = kg.root / "ledger"
    agents(kg, path)
    kg.start_supervisor()
    barrier = kg.root / "go"
    workers = [
        subprocess.Popen(
            [PY, "-c", ADD_AND_CANCEL, str(kg.home), str(barrier), str(kg.work), str(ROUNDS)],
            env=kg.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    results = []
    with LiveSampler(str(path)) as sampler:
        try:
            open_barrier(barrier, len(workers))
            for proc in workers:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                results.append(json.loads(out))
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        ids = [i for r in results for i in r["added"]]
        assert len(ids) == len(set(ids)) == 16 * ROUNDS
        tasks = wait_until(
            lambda: (t := kg.tasks()) and all(t[i]["state"] in ("succeeded", "cancelled") for i in ids) and t,
            "every task to settle",
            timeout=60,
        )
    assert sampler.peak <= 3, f"{sampler.peak} agents alive at once with cap 3"
    assert sampler.samples > 20

    ran = starts(path)
    assert max(ran.values()) == 1, "no task ran twice"
    ended_ids = {task for kind, task in ledger(path) if kind == "end"}
    for task_id in ids:
        state = tasks[task_id]["state"]
        types = [e["type"] for e in kg.events(task_id)]
        if state == "succeeded":
            assert ran[task_id] == 1 and task_id in ended_ids
            assert types.count("task_completed") == 1
        elif "task_started" not in types:
            assert ran[task_id] == 0, f"task {task_id} was cancelled before it started, yet it ran"
        assert types.count("task_cancelled") == (state == "cancelled")
    cancelled = {v for r in results for v, code, _ in r["cancels"] if code == 0}
    assert cancelled <= {i for i in ids if tasks[i]["state"] in ("cancelled", "succeeded")}
    assert any(tasks[i]["state"] == "cancelled" for i in ids) and any(
        tasks[i]["state"] == "succeeded" for i in ids
    )
    assert kg.our_processes() == [] or all(ended(p.pid) for p in kg.our_processes())


REQUEUE_LOOP = """
import contextlib, io, json, os, sys
from kugetsu_tui import cli
home, task, stop = sys.argv[1], sys.argv[2], sys.argv[3]
done = 0
while not os.path.exists(stop):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--home", home, "requeue", task])
    if code == 0 and out.getvalue().strip().endswith(": requeued"):
        done += 1
    elif code not in (0, 2):
        sys.exit(f"requeue: {code} {err.getvalue()}")
print(json.dumps({"requeued": done}))
"""


def test_requeue_racing_admission_runs_the_task_once_per_requeue(kg: Kugetsu) -> None:
    """Two processes requeue one failing task in a tight loop while the supervisor admits,
    runs and fails it again: every requeue that says 'requeued' is one more run, never two,
    and no two runs overlap."""
    path = kg.root / "ledger"
    agents(kg, path)
    kg.start_supervisor()
    _, out, _ = quiet_main(kg, "add", "--agent", "fail", "--max-attempts", "1", "--no-worktree", "--repo", str(kg.work), "x")  # fmt: skip
    task_id = int(out)
    kg.wait_state(task_id, "failed")
    stop = kg.root / "stop"
    racers = [
        subprocess.Popen(
            [PY, "-c", REQUEUE_LOOP, str(kg.home), str(task_id), str(stop)],
            env=kg.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        wait_until(lambda: starts(path)[task_id] >= ROUNDS, f"{ROUNDS} runs", timeout=60)
    finally:
        stop.touch()
        results = []
        for proc in racers:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    task = kg.wait_state(task_id, "failed")
    requeued = sum(r["requeued"] for r in results)
    assert starts(path)[task_id] == 1 + requeued, "one run per requeue, and the first"
    assert [e["type"] for e in kg.events(task_id)].count("task_requeued") == requeued
    assert task["attempts"] == 1
    lines = [kind for kind, _ in ledger(path)]
    assert lines == ["start", "end"] * (1 + requeued), "never two runs at once"


def test_cancel_while_starting_never_leaves_the_agent_running(kg: Kugetsu, repo: Path) -> None:
    """Half the rounds cancel while a worktree setup holds the task in `starting`; the
    others cancel after a random short delay (queued, starting or running by then)."""
    path = kg.root / "ledger"
    setup_started, setup_gate = kg.root / "setup-started", kg.root / "setup-gate"
    hold = f'touch "{setup_started}"; while [ ! -e "{setup_gate}" ]; do sleep 0.005; done'
    agents(kg, path, worktree={"setup": ["sh", "-c", hold]})
    kg.start_supervisor()
    rng = random.Random()
    never_gate = kg.root / "never"
    in_starting = 0
    for n in range(ROUNDS):
        setup_started.unlink(missing_ok=True)
        setup_gate.unlink(missing_ok=True)
        gated = n % 2 == 0
        if not gated:
            setup_gate.touch()
        code, out, err = quiet_main(kg, "add", "--agent", "gated", "--repo", str(repo), str(never_gate))
        assert code == 0, err
        task_id = int(out)
        if gated:
            wait_until(setup_started.exists, "the worktree setup to start")
            assert kg.task(task_id)["state"] == "starting"
        else:
            time.sleep(rng.uniform(0, 0.05))
        code, out, err = quiet_main(kg, "cancel", str(task_id))
        assert code == 0, err
        setup_gate.touch()
        kg.wait_state(task_id, "cancelled")
        wait_until(lambda t=task_id: not task_alive(kg, t), f"task {task_id}'s processes to end")
        types = [e["type"] for e in kg.events(task_id)]
        if gated:
            assert "task_started" not in types and starts(path)[task_id] == 0, "it never ran"
            in_starting += 1
        assert starts(path)[task_id] <= 1
        assert kg.status()["live"] == 0
    assert in_starting == ROUNDS // 2


def test_pause_of_a_task_that_just_exited(kg: Kugetsu) -> None:
    """The agent ends as the pause arrives. A pause that says 'paused' left the task paused
    with its processes stopped; otherwise it is refused. Either way the task succeeds and
    nothing stays stopped."""
    path = kg.root / "ledger"
    agents(kg, path)
    kg.start_supervisor()
    rng = random.Random()
    answers: Counter[str] = Counter()
    for n in range(ROUNDS):
        gate = kg.root / f"gate-{n}"
        code, out, err = quiet_main(kg, "add", "--agent", "gated", "--no-worktree", "--repo", str(kg.work), str(gate))  # fmt: skip
        task_id = int(out)
        kg.wait_state(task_id, "running")
        wait_until(lambda t=task_id: starts(path)[t] == 1, "the agent to start")
        gate.touch()
        time.sleep(rng.uniform(0, 0.015))  # the agent sees the gate within ~5 ms
        code, out, err = quiet_main(kg, "pause", str(task_id))
        if code == 0 and out.strip().endswith(": paused"):
            answers["paused"] += 1
            task = kg.task(task_id)
            assert task["state"] == "paused", f"said paused, but the task is {task['state']}"
            # SIGSTOP lands when each process is next scheduled (one in disk sleep stops as it
            # leaves the call): under load /proc may show it running for a moment.
            wait_until(
                lambda t=task_id: (
                    (alive := task_alive(kg, t)) and all(p.status() == psutil.STATUS_STOPPED for p in alive)
                ),
                "every process of the paused task to be stopped",
                timeout=5,
            )
            assert quiet_main(kg, "resume", str(task_id))[0] == 0
        else:
            assert code == 2 and "only running tasks can be paused" in err, (code, out, err)
            answers["refused"] += 1
        kg.wait_state(task_id, "succeeded")
        wait_until(lambda t=task_id: not task_alive(kg, t), "nothing of it left")
    assert sum(answers.values()) == ROUNDS
