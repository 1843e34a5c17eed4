"""engine/commands.py: the one rule that makes an attempt's command from the agent and the
task. Each mode of prompt_via is started for real through runner.spawn, the way a
supervisor starts an attempt, and the agent must receive the prompt byte-exact."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kugetsu_tui.engine.commands import build_command, working_dir
from kugetsu_tui.engine.config import AgentConfig
from kugetsu_tui.engine.home import Home, private_dir
from kugetsu_tui.engine.model import NewTask, Task
from kugetsu_tui.engine.runner import spawn, write_private
from kugetsu_tui.engine.store import Store

PROMPT = "line one\nline 'two' with $HOME and {task_id}\n"
# Each agent writes what it got to out/<task id>, and its environment's task id beside it.
AGENTS = {
    "argv": AgentConfig("argv", ("sh", "-c", 'printf "%s" "$1" > "$2"', "agent", "{prompt}", "{out}")),
    "stdin": AgentConfig("stdin", ("sh", "-c", 'cat > "$1"', "agent", "{out}"), prompt_via="stdin"),
    "file": AgentConfig(
        "file", ("sh", "-c", 'cat -- "$1" > "$2"', "agent", "{prompt}", "{out}"), prompt_via="file"
    ),
}


def a_task(home: Home, tmp_path: Path, *, no_worktree: bool = True) -> Task:
    store = Store(home.db_path)
    try:
        (task_id,) = store.add(
            [NewTask(prompt=PROMPT, agent="argv", repo=str(tmp_path), no_worktree=no_worktree)], time.time()
        )
        task = store.get(task_id)
    finally:
        store.close()
    assert task is not None
    return task


@pytest.mark.parametrize("mode", sorted(AGENTS))
def test_the_agent_gets_the_prompt_exactly_in_every_mode(tmp_path: Path, mode: str) -> None:
    home = Home(tmp_path / "home").ensure()
    task = a_task(home, tmp_path)
    out = tmp_path / "out"
    agent = AGENTS[mode]
    agent = AgentConfig(
        mode, tuple(part.replace("{out}", str(out)) for part in agent.command), prompt_via=mode
    )
    command = build_command(agent, task, working_dir(task, home), home)

    assert command.cwd == tmp_path
    assert command.env["KUGETSU_TASK_ID"] == str(task.id)
    if mode == "argv":
        assert command.prompt_file is None and command.stdin is None
        assert PROMPT in command.argv
    else:
        assert command.prompt_file == home.run_dir(task.id) / "prompt"
        assert PROMPT not in command.argv
        assert (command.stdin == command.prompt_file) == (mode == "stdin")
        assert "{prompt}" not in command.argv

    run_dir = private_dir(home.run_dir(task.id))
    if command.prompt_file is not None:
        write_private(command.prompt_file, task.prompt)
    spawned = spawn(
        command.argv,
        cwd=command.cwd,
        run_dir=run_dir,
        attempt=1,
        env=os.environ | dict(command.env),
        stdin=command.stdin,
    )
    _, status = os.waitpid(spawned.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (run_dir / "log").read_text()
    assert out.read_bytes() == PROMPT.encode()


def test_the_shown_line_says_where_stdin_comes_from(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    task = a_task(home, tmp_path)
    command = build_command(AGENTS["stdin"], task, tmp_path, home)
    assert command.shell_line() == f"sh -c 'cat > \"$1\"' agent '{{out}}' < {home.run_dir(task.id)}/prompt"


def test_a_task_with_a_worktree_runs_in_the_homes_worktree_until_it_has_its_own(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    task = a_task(home, tmp_path, no_worktree=False)
    assert working_dir(task, home) == home.worktree_path(task.id)
    assert working_dir(task.replace(worktree="/elsewhere"), home) == Path("/elsewhere")
