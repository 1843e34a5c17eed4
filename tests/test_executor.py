"""The supervisor reaches agent processes only through its Executor: a supervisor given
the real local executor, wrapped to keep a log of what it was asked, runs real agents
and every spawn, exit and cancel of theirs shows in that log."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from kugetsu_tui.engine import supervisor as supervisor_package
from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.executor import Launch, Spawned
from kugetsu_tui.engine.executor.local import LocalExecutor
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import EventType
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.supervisor import Supervisor
from tests.helpers.harness import Kugetsu, script

# What acts on a process directly: runner's process functions and the os calls beneath them.
PROCESS_CALLS = {
    "runner": {
        "spawn",
        "signal_group",
        "reap",
        "open_pidfd",
        "group_alive",
        "is_same_process",
        "start_time",
        "read_exit_file",
        "stray_processes",
        "find_wrapper",
    },
    "os": {"kill", "killpg", "waitpid", "pidfd_open", "posix_spawn"},
}


class LoggedExecutor(LocalExecutor):
    """The local executor, unchanged, noting each call the supervisor makes."""

    def __init__(self, home: Home) -> None:
        super().__init__(home)
        self.calls: list[tuple[str, int]] = []
        self.pids: dict[int, int] = {}

    def spawn(self, launch: Launch) -> Spawned:
        spawned = super().spawn(launch)
        self.calls.append(("spawn", launch.task_id))
        self.pids[spawned.pid] = launch.task_id
        return spawned

    def exit_status(self, task_id: int, pid: int, *, child: bool) -> int | None:
        status = super().exit_status(task_id, pid, child=child)
        self.calls.append(("exit", task_id))
        return status

    def terminate(self, task_id: int, pid: int) -> None:
        self.calls.append(("terminate", task_id))
        super().terminate(task_id, pid)


def test_every_attempt_is_spawned_watched_and_ended_through_the_executor(kg: Kugetsu) -> None:
    gate = kg.root / "never"
    ok = kg.add(script(["ok"]))
    failing = kg.add(script(["exit", 3]), "--max-attempts", "1")
    hanging = kg.add(script(["wait-file", gate]))
    home = Home(Path(kg.home))
    executor = LoggedExecutor(home)
    supervisor = Supervisor(home, load_config(kg.config_path), install_signals=False, executor=executor)
    store = Store(home.db_path)
    control = Control(home, store, wake=supervisor.wake)

    def cancel_the_hanging_one(events: list[Event]) -> None:
        if any(e.type == EventType.TASK_STARTED and e.task_id == hanging for e in events):
            control.cancel([hanging])

    supervisor.on_events = cancel_the_hanging_one
    code = asyncio.run(asyncio.wait_for(supervisor.run(), timeout=30))
    store.close()

    assert code == 1, "a failed and a cancelled task: the run did not succeed"
    tasks = kg.tasks()
    assert [tasks[i]["state"] for i in (ok, failing, hanging)] == ["succeeded", "failed", "cancelled"]
    assert tasks[failing]["reason"] == "exit code 3"
    for task_id in (ok, failing, hanging):
        assert executor.calls.count(("spawn", task_id)) == 1
        assert ("exit", task_id) in executor.calls, f"task {task_id}'s exit was learned from the executor"
    assert ("terminate", hanging) in executor.calls
    assert executor.calls.index(("terminate", hanging)) < executor.calls.index(("exit", hanging))
    assert not [c for c in executor.calls if c[0] == "terminate" and c[1] != hanging]


def test_the_supervisor_touches_processes_only_through_its_executor() -> None:
    """So that another executor can be added without touching the loop. The one exception
    is the worktree setup: it runs on the supervisor's own machine whatever the executor."""
    found = []
    for path in sorted(Path(supervisor_package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.attr in PROCESS_CALLS.get(node.value.id, ())
            ):
                found.append((path.name, f"{node.value.id}.{node.attr}"))
            elif isinstance(node, ast.ImportFrom) and node.module in ("os", "kugetsu_tui.engine.runner"):
                module = "os" if node.module == "os" else "runner"
                found += [
                    (path.name, f"{module}.{a.name}") for a in node.names if a.name in PROCESS_CALLS[module]
                ]
    assert found == [("start.py", "runner.signal_group")] * 2, found
