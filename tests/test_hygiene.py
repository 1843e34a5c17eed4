"""Process hygiene: nothing of an ended task is left running, nothing is left unreaped, no
descriptor of the supervisor leaks into an agent, and a chatty agent cannot fill the disk.

Checked in the OS process table and /proc, not in kugetsu-tui's own counters.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import psutil
import pytest

from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, ended, script, wait_until


def _task_processes(kg: Kugetsu, task_id: int) -> list[psutil.Process]:
    """Every process that carries this task's marker: wrapper, agent and all it started."""
    found = []
    for proc in kg.our_processes():
        try:
            if proc.environ().get("KUGETSU_TASK_ID") == str(task_id):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancel_and_timeout_end_the_whole_tree(kg: Kugetsu, how: str) -> None:
    """The agent ignores SIGTERM; it has a child with a grandchild in its group, and a child
    that called setsid() to leave the group and ignores SIGTERM too. After the grace period
    not one of them remains."""
    kg.write_config(queue={"kill_grace": "0.5s", "max_attempts": 1})
    starts = kg.root / "starts"
    kg.start_supervisor()
    options = ("--timeout", "1s") if how == "timeout" else ()
    task_id = kg.add(
        script(
            ["ignore-term"],
            ["spawn-children", 1, 60],
            ["escape-stubborn", 60, starts],
            ["record", starts],
            ["hang", 60],
        ),
        *options,
    )
    kg.wait_state(task_id, "running")
    wait_until(lambda: len(_records(starts)) == 2, "the agent and its escaped child to start")
    tree = wait_until(
        lambda: (p := _task_processes(kg, task_id)) and len(p) == 5 and p,
        "wrapper, agent, child, grandchild and the escaped child",
    )
    assert len({os.getsid(p.pid) for p in tree}) == 2, "one of them left the agent's session"

    if how == "cancel":
        assert kg.main("cancel", str(task_id))[0] == 0
        task = kg.wait_state(task_id, "cancelled")
    else:
        task = kg.wait_state(task_id, "failed")
        assert task["reason"] == "timed out after 1s"
    wait_until(lambda: all(ended(p.pid) for p in tree), "every process of the task to end")
    assert [p for p in _task_processes(kg, task_id) if not ended(p.pid)] == []
    events = [e["type"] for e in kg.events(task_id)]
    assert events[-1] == ("task_cancelled" if how == "cancel" else "task_error")


def test_no_zombies_accumulate(kg: Kugetsu) -> None:
    """Forty agents end, some leaving orphans behind: the supervisor collects every child."""
    kg.write_config(
        capacity={"cap": 4},
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"]},
            "quick": {"command": ["sh", "-c", 'exit "$1"', "agent", "{prompt}"]},
        },
    )
    sup = kg.start_supervisor()
    ids = [kg.add(str(i % 2), "--agent", "quick", "--max-attempts", "1") for i in range(36)]
    ids += [kg.add(script(["grandchild", 0.2], ["ok"])) for _ in range(4)]
    wait_until(lambda: all(kg.tasks()[i]["state"] in ("succeeded", "failed") for i in ids), "all to settle")
    supervisor = psutil.Process(sup.pid)
    # Its hooks and samplers may come and go; what is left must never be a zombie.
    wait_until(lambda: not supervisor.children(), "the supervisor to have no children left")
    assert supervisor.status() != psutil.STATUS_ZOMBIE
    zombies = [p for p in supervisor.children(recursive=True) if p.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def test_agents_get_only_stdin_stdout_and_stderr(kg: Kugetsu) -> None:
    """The supervisor holds its database, lock, pidfds and watchers open: none of it leaks.
    stdin is /dev/null (or the prompt, for prompt_via = "stdin"), stdout and stderr the log."""
    gate = kg.root / "gate"
    kg.write_config(
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"]},
            "piped": {"command": [PY, FAKE_AGENT, "wait-file", str(gate)], "prompt_via": "stdin"},
        }
    )
    kg.start_supervisor()
    plain = kg.add(script(["wait-file", gate]))
    piped = kg.add("read me on stdin", "--agent", "piped")
    kg.wait_state(plain, "running")
    kg.wait_state(piped, "running")
    wait_until(
        lambda: len(_task_processes(kg, plain)) == 2 and len(_task_processes(kg, piped)) == 2, "agents"
    )
    try:
        for task_id, stdin in ((plain, os.devnull), (piped, str(kg.home / "runs" / str(piped) / "prompt"))):
            log = str(kg.home / "runs" / str(task_id) / "log")
            for proc in _task_processes(kg, task_id):  # the sh wrapper and the agent itself
                # A starting interpreter briefly holds files of its own (its modules) open;
                # a leaked descriptor would stay, so wait for the set to settle.
                def settled(pid: int = proc.pid) -> list[int] | None:
                    found = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
                    return found if found == [0, 1, 2] else None

                try:
                    fds = wait_until(settled, "only fds 0, 1 and 2", timeout=10)
                except BaseException:
                    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd"))
                    raise AssertionError(f"{proc.cmdline()[:4]} has descriptors {fds}") from None
                links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in fds]
                assert links == [stdin, log, log]
    finally:
        gate.touch()
    kg.wait_state(plain, "succeeded")
    kg.wait_state(piped, "succeeded")


def test_max_log_keeps_a_chatty_agents_log_bounded(kg: Kugetsu) -> None:
    """While it runs (on the sampling timer) and once it has ended, the log keeps the tail."""
    cap = 64 * 1024
    gate = kg.root / "gate"
    kg.write_config(queue={"max_log": "64KiB"})
    kg.start_supervisor()
    lines = 100_000  # about 0.9 MB a burst
    task_id = kg.add(script(["print-lines", lines], ["wait-file", gate], ["print-lines", lines]))
    log = kg.home / "runs" / str(task_id) / "log"
    kg.wait_state(task_id, "running")
    wait_until(lambda: log.exists() and log.stat().st_size > 10 * cap, "the first burst")
    wait_until(lambda: log.stat().st_size <= cap, "the log to be cut while the agent runs")
    gate.touch()
    kg.wait_state(task_id, "succeeded")
    size = log.stat().st_size
    assert size <= cap, f"the log of an ended agent is {size} bytes, over max_log {cap}"
    text = log.read_text()
    assert "bytes of older output cut (max_log)" in text
    assert re.search(f"line {lines - 1}\nfake-agent: to stderr\n── exit code 0 · [^\n]* ──\n$", text), (
        "the newest output is kept, then how the attempt ended"
    )
    shown = kg.cli("logs", str(task_id))
    assert shown.returncode == 0 and shown.stdout == text
