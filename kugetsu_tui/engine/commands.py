"""What an attempt runs: the agent's argv, its stdin, where it runs and what it adds to the
environment, made from the agent's configured command and the task.

The one place that rule lives, so that the supervisor that spawns an attempt and the
dashboard that shows its command line cannot disagree. Pure: it reads and writes nothing;
a caller that spawns writes the prompt to `prompt_file` first (see `AgentCommand`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kugetsu_tui.engine.agents import MASK
from kugetsu_tui.engine.config import AgentConfig
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import PromptVia, Task
from kugetsu_tui.engine.runner import substitute


@dataclass(frozen=True, slots=True)
class AgentCommand:
    """One attempt's command. With prompt_via = "stdin" or "file" the prompt travels
    through `prompt_file` (private to the task's run folder), which the spawner writes
    before starting `argv`; with "stdin" that file is also the agent's stdin."""

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]  # added to the environment the agent inherits
    stdin: Path | None = None
    prompt_file: Path | None = None
    secret: frozenset[str] = frozenset()  # names in env from the agent's config: never shown

    def shell_line(self) -> str:
        """The command as a person would type it (for showing only; it never runs a shell),
        the agent's own variables in front with their values masked."""
        line = shlex.join(self.argv)
        if self.secret:
            line = " ".join(f"{name}={MASK}" for name in sorted(self.secret)) + " " + line
        return f"{line} < {shlex.quote(str(self.stdin))}" if self.stdin is not None else line


def working_dir(task: Task, home: Home) -> Path:
    """Where the task's attempts run: its worktree (made at its first start), or the repo
    itself for a task without one."""
    if task.no_worktree:
        return Path(task.worktree or task.repo or ".")
    return Path(task.worktree) if task.worktree else home.worktree_path(task.id)


def build_command(agent: AgentConfig, task: Task, cwd: Path, home: Home) -> AgentCommand:
    """The attempt `task.attempts` of `task` by `agent`, run in `cwd`."""
    command, prompt_arg, stdin, prompt_file = agent.command, task.prompt, None, None
    if agent.prompt_via != PromptVia.ARGV:
        # Prompts too large for argv, or with a NUL byte, go through a private file.
        prompt_file = home.run_dir(task.id) / "prompt"
        prompt_arg = str(prompt_file)
        if agent.prompt_via == PromptVia.STDIN:
            stdin = prompt_file
            command = tuple(part for part in command if part != "{prompt}")
    argv = substitute(command, {"prompt": prompt_arg, "task_id": str(task.id), "worktree": str(cwd)})
    env = {
        **agent.env,
        "KUGETSU_TASK_ID": str(task.id),
        "KUGETSU_ATTEMPT": str(task.attempts),
        "KUGETSU_HOME": str(home.root),
    }
    return AgentCommand(tuple(argv), cwd, env, stdin, prompt_file, frozenset(agent.env))
