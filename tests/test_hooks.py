"""Hooks never hold up the supervisor: not a hook that leaves a child holding its pipe, not
one that floods its stderr. Real hooks, a real supervisor, measured in the OS process table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psutil

from tests.helpers.harness import PY, WAIT, Kugetsu, script, wait_until


def _ts(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["ts"])).timestamp()


def _left_behind(kg: Kugetsu, argv: list[str]) -> list[psutil.Process]:
    found = []
    for proc in kg.our_processes(agents_only=False):
        try:
            if proc.cmdline() == argv and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_hook_leaving_a_child_on_its_pipe_never_delays_tasks(kg: Kugetsu, repo: Path) -> None:
    """The hook exits at once but leaves a setsid() child holding its stderr. Tasks (each
    in a worktree of its own) still start promptly, and no such child outlives the run."""
    kg.write_config(
        hooks=[
            {
                "on": ["task_started", "task_completed"],
                "command": ["sh", "-c", "setsid sleep 127 & exit 0"],
                "timeout": "2s",
            }
        ]
    )
    ids = [kg.add(script(["ok"]), "--repo", str(repo)) for _ in range(10)]
    supervisor = kg.start_supervisor()
    wait_until(lambda: all(t["state"] == "succeeded" for t in kg.tasks().values()), "every task to succeed")
    events = kg.events()
    began = min(_ts(e) for e in events if e["type"] == "supervisor_started")
    started = {e["task_id"]: _ts(e) - began for e in events if e["type"] == "task_started"}
    assert sorted(started) == ids
    assert max(started.values()) < 15, f"tasks started late: {started}"
    wait_until(lambda: not _left_behind(kg, ["sleep", "127"]), "the hooks' children to be ended", timeout=5)
    assert kg.stop_supervisor(supervisor, timeout=WAIT) == 0
    assert not _left_behind(kg, ["sleep", "127"])
    assert not [e for e in kg.events() if e["type"] == "hook_failed"], "the hook itself succeeded"


def test_a_hook_flooding_stderr_leaves_the_supervisors_memory_bounded(kg: Kugetsu) -> None:
    """200 MB on a hook's stderr: the supervisor keeps a small tail for the reason, and its
    RSS (read from outside) stays far below what it would take to hold the output."""
    flood = "import sys; b = b'x' * (1 << 20); [sys.stderr.buffer.write(b) for _ in range(200)]; "
    flood += "sys.stderr.write('\\nthe last words\\n'); sys.exit(3)"
    kg.write_config(hooks=[{"on": ["task_completed"], "command": [PY, "-c", flood], "timeout": "60s"}])
    supervisor = kg.start_supervisor()
    watched = psutil.Process(supervisor.pid)
    before = watched.memory_info().rss
    peak = before

    def failed() -> list[dict[str, object]]:
        nonlocal peak
        peak = max(peak, watched.memory_info().rss)
        return [e for e in kg.events() if e["type"] == "hook_failed"]

    kg.add(script(["ok"]))
    (failure,) = wait_until(failed, "the hook to fail", timeout=60, interval=0.005)
    assert failure["error"] == "exit code 3: the last words"
    grown = peak - before
    assert grown < 50 * 2**20, f"the supervisor grew by {grown / 2**20:.0f} MiB"
    assert kg.stop_supervisor(supervisor) == 0
