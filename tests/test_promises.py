"""What the supervisor promises when it is stopped, killed or starved at the worst moment:
no attempt judged by a clock that ran while nobody watched, no acknowledged cancel lost,
no setup skipped, no process left behind, no agent handed the whole home.

Each test reproduces a failure seen with real processes (SIGSTOP/SIGCONT, kill -9) and
asserts on the store, the agent's own records and the OS process table."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.markers import SETUP_FILE
from kugetsu_tui.engine.supervisor import Supervisor
from tests.helpers.harness import PY, Kugetsu, ended, script, wait_until


def records(path: Path) -> list[dict[str, object]]:
    """What the fake agent wrote with its `record` step, one dict per start."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_past(moment: float) -> None:
    """Let the wall clock pass `moment` (the test is about deadlines, so it waits on time)."""
    wait_until(lambda: time.time() > moment, "the deadline to pass", timeout=60, interval=0.05)


def kill9(proc: psutil.Popen | object) -> None:
    pid = proc.pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    proc.wait(10)  # type: ignore[attr-defined]


# --- 1. a stopped supervisor and an agent that exited meanwhile ---------------------------


def test_a_stopped_supervisor_does_not_call_an_agent_that_exited_meanwhile_timed_out(kg: Kugetsu) -> None:
    starts = kg.root / "starts"
    tasks = [kg.add(script(["record", starts], ["sleep", 1]), "--timeout", "3s") for _ in range(3)]
    supervisor = kg.popen("run", "--headless")
    wait_until(lambda: records(starts), "the agent to start")
    started = float(records(starts)[0]["t"])  # type: ignore[arg-type]
    os.kill(supervisor.pid, signal.SIGSTOP)  # Ctrl-Z
    try:
        for task in tasks:
            wait_until((kg.home / "runs" / str(task) / "exit").exists, "the agents to exit")
        wait_past(started + 4)  # their deadlines pass while the supervisor is stopped
    finally:
        os.kill(supervisor.pid, signal.SIGCONT)  # fg
    assert supervisor.wait(30) == 0
    for task in tasks:
        settled = kg.task(task)
        assert settled["state"] == "succeeded", settled["reason"]
    assert len(records(starts)) == 3  # each ran once


def test_a_tick_after_a_stop_reads_exits_before_it_judges_deadlines(kg: Kugetsu) -> None:
    """The same, made deterministic: the loop is held (as SIGSTOP holds it) from before the
    agent exits until after its deadline, then ticks before the exit's callback has run,
    which is the order a stopped loop may take when its timer and the exit are both due."""
    task = kg.add(script(["ok"]), "--timeout", "1s", "--max-attempts", "1")
    home = Home(kg.home)
    supervisor = Supervisor(home, load_config(kg.config_path), install_signals=False)
    exit_file = kg.home / "runs" / str(task) / "exit"

    async def hold_the_loop_then_tick() -> None:
        while task not in supervisor.procs:
            await asyncio.sleep(0.005)
        proc = supervisor.procs[task]
        started = kg.task(task)["started_at"]
        assert started is not None
        # Nothing else runs on the loop meanwhile: the exit is not seen by it.
        wait_until(lambda: exit_file.exists() and ended(proc.pid), "the agent to exit")
        wait_past(exit_file.stat().st_mtime + 1.2)  # its deadline has passed
        assert not proc.exited
        supervisor.tick()

    async def main() -> int:
        held = asyncio.ensure_future(hold_the_loop_then_tick())
        code = await asyncio.wait_for(supervisor.run(), timeout=30)
        await held
        return code

    assert asyncio.run(main()) == 0
    settled = kg.task(task)
    assert settled["state"] == "succeeded", settled["reason"]


# --- 14. a deadline holds across a supervisor restart ----------------------------------


def test_an_agent_that_ended_past_its_deadline_while_nobody_watched_timed_out(kg: Kugetsu) -> None:
    starts = kg.root / "starts"
    task = kg.add(script(["record", starts], ["sleep", 2.5]), "--timeout", "1s", "--max-attempts", "1")
    first = kg.start_supervisor()
    wait_until(lambda: records(starts), "the agent to start")
    kill9(first)
    wait_until((kg.home / "runs" / str(task) / "exit").exists, "the agent to exit on its own", timeout=30)
    result = kg.run()
    assert result.returncode == 1, result.stderr
    settled = kg.task(task)
    assert settled["state"] == "failed" and "timed out" in settled["reason"], settled
    assert len(records(starts)) == 1


def test_a_readopted_agent_past_its_deadline_is_ended_as_timed_out(kg: Kugetsu) -> None:
    starts = kg.root / "starts"
    task = kg.add(script(["record", starts], ["sleep", 60]), "--timeout", "1s", "--max-attempts", "1")
    first = kg.start_supervisor()
    wait_until(lambda: records(starts), "the agent to start")
    kill9(first)
    wait_past(float(records(starts)[0]["t"]) + 1.5)  # type: ignore[arg-type]
    result = kg.run(timeout=30)
    assert result.returncode == 1, result.stderr
    settled = kg.task(task)
    assert settled["state"] == "failed" and "timed out" in settled["reason"], settled
    assert kg.agent_processes() == []


# --- 3. an acknowledged cancel survives the supervisor's death --------------------------


def test_a_cancel_acknowledged_before_the_supervisor_died_is_carried_out_by_the_next(kg: Kugetsu) -> None:
    kg.write_config(queue={"kill_grace": "5s"})
    starts = kg.root / "starts"
    task = kg.add(script(["ignore-term"], ["record", starts], ["sleep", 60]))
    first = kg.start_supervisor()
    wait_until(lambda: records(starts), "the agent to start")
    code, out, err = kg.main("cancel", str(task))
    assert code == 0 and "cancelling" in out, (out, err)
    kill9(first)  # within the kill grace: the agent still runs, ignoring SIGTERM
    assert kg.task(task)["state"] == "running"
    result = kg.run(timeout=30)
    settled = kg.task(task)
    assert settled["state"] == "cancelled", settled
    assert result.returncode == 1
    assert len(records(starts)) == 1  # never started again
    assert kg.agent_processes() == []


def test_a_cancel_of_a_starting_task_survives_the_supervisor_dying_during_setup(
    kg: Kugetsu, repo: Path
) -> None:
    setup_started = kg.root / "setup-started"
    # The setup ignores SIGTERM, so the cancel is still under way when the supervisor dies.
    kg.write_config(worktree={"setup": ["sh", "-c", f"trap '' TERM; touch \"{setup_started}\"; sleep 3"]})
    starts = kg.root / "starts"
    task = kg.add(script(["record", starts]), "--repo", str(repo))
    first = kg.start_supervisor()
    wait_until(setup_started.exists, "the worktree setup to start")
    code, _, err = kg.main("cancel", str(task))
    assert code == 0, err
    kill9(first)
    result = kg.run(timeout=30)
    assert kg.task(task)["state"] == "cancelled", result.stderr
    assert records(starts) == []  # the agent never ran


def test_a_state_db_made_before_cancel_intents_is_upgraded_in_place(kg: Kugetsu) -> None:
    task = kg.add(script(["ok"]))
    # Make it the database an older version left: no cancel_requested_at, schema version 1.
    db = sqlite3.connect(kg.home / "state.db")
    db.execute("ALTER TABLE tasks DROP COLUMN cancel_requested_at")
    db.execute("PRAGMA user_version=1")
    db.close()
    assert kg.task(task)["state"] == "queued"  # read by the upgraded store
    db = sqlite3.connect(kg.home / "state.db")
    columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert "cancel_requested_at" in columns and version >= 2
    assert kg.run().returncode == 0
    assert kg.task(task)["state"] == "succeeded"


# --- 4. worktree setup runs until it has succeeded once ---------------------------------


def test_setup_runs_again_on_the_next_attempt_when_it_failed(kg: Kugetsu, repo: Path) -> None:
    count = kg.root / "setup-runs"
    # Fails the first time, succeeds the second: counts its runs in a file outside the worktree.
    setup = f'n=$(cat "{count}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{count}"; [ $n -ge 2 ]'
    kg.write_config(worktree={"setup": ["sh", "-c", setup]})
    seen = kg.root / "seen"
    task = kg.add(script(["check", "SETUP_MARK", seen]), "--repo", str(repo))
    result = kg.run()
    assert result.returncode == 0, result.stderr
    assert kg.task(task)["state"] == "succeeded"
    assert count.read_text().strip() == "2"  # setup ran before the second attempt too


def test_a_setup_orphaned_by_a_killed_supervisor_is_ended_and_run_again(kg: Kugetsu, repo: Path) -> None:
    runs = kg.root / "setup-runs"
    started = kg.root / "setup-started"
    setup = f'echo $$ >> "{runs}"; touch "{started}"; sleep 30'
    kg.write_config(worktree={"setup": ["sh", "-c", setup]})
    task = kg.add(script(["ok"]), "--repo", str(repo))
    first = kg.start_supervisor()
    wait_until(started.exists, "the worktree setup to start")
    orphan = int(runs.read_text().split()[0])
    # Killed once it has noted the setup's group (between starting a setup and noting it,
    # a kill leaves one that only its own end stops: a window of one file write).
    wait_until((kg.home / "runs" / str(task) / SETUP_FILE).exists, "the supervisor to note the setup")
    kill9(first)
    started.unlink()
    second = kg.start_supervisor()
    wait_until(lambda: ended(orphan), "the orphaned setup to be ended")
    wait_until(started.exists, "the setup to run again")
    assert len(runs.read_text().split()) == 2
    assert kg.task(task)["state"] == "starting"
    kg.stop_supervisor(second)


# --- 11. nothing an attempt started outlives it -----------------------------------------


def test_an_agent_that_exits_leaves_no_escaped_process_behind(kg: Kugetsu) -> None:
    task = kg.add(script(["escape", 300], ["ok"]))
    result = kg.run()
    assert result.returncode == 0, result.stderr
    assert kg.task(task)["state"] == "succeeded"
    wait_until(lambda: kg.agent_processes(children=True) == [], "the escaped child to be ended")


def test_an_escaped_child_that_drops_the_marker_is_still_ended(kg: Kugetsu) -> None:
    # The grandchild replaces its whole environment (env -i) and leaves the session.
    code = (
        "import os, subprocess, time;"
        "subprocess.Popen(['env', '-i', 'sleep', '301'], start_new_session=True);"
        "time.sleep(3)"
    )
    kg.write_config(agents={"fake": {"command": [PY, "-c", code, "{prompt}"]}})
    task = kg.add("x")
    result = kg.run()
    assert result.returncode == 0, result.stderr
    assert kg.task(task)["state"] == "succeeded"

    def sleepers() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if proc.info["cmdline"] == ["sleep", "301"]:
                found.append(proc)
        return found

    try:
        wait_until(lambda: not sleepers(), "the escaped grandchild to be ended")
    finally:
        for proc in sleepers():
            proc.kill()


# --- 9. agents get what they need, not the home ----------------------------------------


def test_an_agent_is_not_told_where_the_home_is(kg: Kugetsu) -> None:
    dump = kg.root / "env.json"
    code = f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))"
    kg.write_config(agents={"fake": {"command": [PY, "-c", code, "{prompt}"]}})
    task = kg.add("x")
    assert kg.run().returncode == 0
    env = json.loads(dump.read_text())
    assert env["KUGETSU_TASK_ID"] == str(task)
    assert "KUGETSU_HOME" not in env
    assert not any(str(kg.home) in value for value in env.values())


# --- 2. a full disk ------------------------------------------------------------------------


@pytest.fixture
def small_home(kg: Kugetsu) -> Iterator[Kugetsu]:
    """The test's home on a 3 MiB tmpfs of its own, so an agent's output can fill it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the home needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(kg.home)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        kg.write_config(capacity={"cap": 1, "memory_reserve": 0})
        yield kg
    finally:
        kg.cleanup()
        subprocess.run(["umount", "-l", str(kg.home)], check=False)


def disk_full(path: Path) -> bool:
    return os.statvfs(path).f_bavail == 0


def test_a_full_disk_stops_admission_loses_nothing_and_runs_nothing_twice(small_home: Kugetsu) -> None:
    kg = small_home
    starts, flooded, gate = kg.root / "starts", kg.root / "flooded", kg.root / "gate"
    flooder = kg.add(script(["record", starts], ["flood", 8], ["record", flooded], ["wait-file", gate]))
    waiting = kg.add(script(["record", starts]))
    supervisor = kg.start_supervisor()
    wait_until(lambda: records(flooded), "the agent to fill the disk")
    assert disk_full(kg.home)

    added = kg.cli("add", "--no-worktree", "--repo", str(kg.work), "--", "one more")
    assert added.returncode == 2, added
    assert "disk" in added.stderr and len(added.stderr.strip().splitlines()) == 1, added.stderr
    assert "Traceback" not in added.stderr

    gate.touch()  # the agent exits 0 while nothing can be written: not its exit file, not the store
    exit_file = kg.home / "runs" / str(flooder) / "exit"
    wait_until(exit_file.exists, "the agent's wrapper to end")
    wait_until(lambda: not kg.agent_processes(), "the agent to end")
    assert exit_file.read_text() == ""  # the disk was full: only the wrapper's status tells
    assert supervisor.poll() is None, kg.output(supervisor)[1]

    # Space comes back: the supervisor carries on by itself.
    os.truncate(kg.home / "runs" / str(flooder) / "log", 0)
    kg.wait_state(waiting, "succeeded", timeout=30)
    settled = kg.task(flooder)
    assert settled["state"] == "succeeded" and settled["exit_code"] == 0, settled
    assert [r["task"] for r in records(starts)] == [str(flooder), str(waiting)]  # each ran once

    def disk_warned() -> bool:
        warnings = [e for e in kg.events() if e["type"] == "supervisor_warning"]
        return any("disk" in str(e.get("error")) for e in warnings)

    # The warning is written once a write lands again, which may follow the success above.
    wait_until(disk_warned, "a supervisor_warning event naming the full disk", timeout=15)
    assert kg.stop_supervisor(supervisor) == 0
    assert "Traceback" not in kg.output(supervisor)[1]


def test_an_empty_exit_file_is_not_an_agent_that_vanished(kg: Kugetsu) -> None:
    """A full disk leaves the wrapper's exit file empty; the agent did run to its end."""
    starts = kg.root / "starts"
    task = kg.add(script(["record", starts], ["sleep", 0.5]))
    first = kg.start_supervisor()
    wait_until(lambda: records(starts), "the agent to start")
    kill9(first)
    exit_file = kg.home / "runs" / str(task) / "exit"
    wait_until(exit_file.exists, "the agent to exit")
    wait_until(lambda: not kg.agent_processes(), "the agent to end")
    exit_file.write_text("")  # as the wrapper leaves it when its write fails
    result = kg.run()
    settled = kg.task(task)
    assert settled["state"] == "failed", settled
    assert "exit status unknown" in settled["reason"], settled
    assert len(records(starts)) == 1, result.stderr  # not run again
