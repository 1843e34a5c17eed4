"""The supervisor reaches agent processes only through its Executor: a supervisor given
the real local executor, wrapped to keep a log of what it was asked, runs real agents
and every spawn, exit and cancel of theirs shows in that log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import Kugetsu, script

from kugetsu_tui.config import load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.executor import Launch, Spawned
from kugetsu_tui.engine.executor.local import LocalExecutor
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import Event, EventType
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.supervisor import Supervisor


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
