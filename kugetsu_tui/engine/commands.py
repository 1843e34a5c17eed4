"""What an attempt runs: the agent's argv, its stdin, where it runs and what it adds to the
environment, made from the agent's configured command and the task — or, when the last
attempt was cut short (a rate limit, a timeout, a stall, an interruption) and the agent
knows how, the command that continues that attempt's session (`resume_of`).

The one place that rule lives, so that the supervisor that spawns an attempt and the
dashboard that shows its command line cannot disagree. Pure: it reads and writes nothing;
a caller that spawns writes the prompt to `prompt_file` first (see `AgentCommand`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kugetsu_tui.engine.agents import MASK
from kugetsu_tui.engine.config import AgentConfig
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import CUT_SHORT, EndedBy, PromptVia, Task
from kugetsu_tui.engine.runner import substitute

# A session id as the agents print them (UUIDs, "ses_…"): anything else, read from output
# the agent does not fully control, is not put on a command line.
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_CUT_BY = {
    EndedBy.RATE_LIMIT: "a rate limit",
    EndedBy.TIMEOUT: "a timeout",
    EndedBy.STALLED: "a stall",
    EndedBy.INTERRUPTED: "an interruption",
}
CONTINUE = "Your previous run of this task was cut short by {why}. Continue where you left off and finish it."


@dataclass(frozen=True, slots=True)
class Resume:
    """An attempt that continues the agent's session: which, after what, with what message."""

    session: str
    after: str  # "a rate limit"
    message: str  # the requeue note, else CONTINUE

    def header(self) -> str:
        """What the attempt's header in the log says of it."""
        return f"resuming session {self.session} after {self.after}"


def resume_of(agent: AgentConfig | None, task: Task) -> Resume | None:
    """The session the task's next (or running) attempt continues, or None when it starts
    afresh: the agent must know how (its preset's resume form, `resume` on), the last
    attempt must have been cut short rather than failed, and have reported its session."""
    if agent is None or not agent.resume or not agent.resume_command:
        return None
    if task.ended_by not in CUT_SHORT or not task.session_id or not _SESSION_ID.fullmatch(task.session_id):
        return None
    why = _CUT_BY[EndedBy(task.ended_by)]
    return Resume(task.session_id, why, task.requeue_note or CONTINUE.format(why=why))


def resume_header(agent: AgentConfig | None, task: Task) -> str | None:
    """ "resuming session ID after a rate limit" for the attempt's header, or None."""
    resume = resume_of(agent, task)
    return resume.header() if resume is not None else None


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
    prompt: str = ""  # what it is given as its prompt (the file holds this): the task's, or a resume's
    resume: Resume | None = None  # set when it continues the agent's session

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
    """The attempt `task.attempts` of `task` by `agent`, run in `cwd`: afresh with the task's
    prompt, or continuing the agent's session with a resume's message (`resume_of`)."""
    resume = resume_of(agent, task)
    values = {"task_id": str(task.id), "worktree": str(cwd)}
    command, prompt = agent.command, task.prompt
    if resume is not None:
        assert agent.resume_command  # (resume_of says so)
        command, prompt, values["session"] = agent.resume_command, resume.message, resume.session
    prompt_arg, stdin, prompt_file = prompt, None, None
    if agent.prompt_via != PromptVia.ARGV:
        # Prompts too large for argv, or with a NUL byte, go through a private file.
        prompt_file = home.run_dir(task.id) / "prompt"
        prompt_arg = str(prompt_file)
        if agent.prompt_via == PromptVia.STDIN:
            stdin = prompt_file
            command = tuple(part for part in command if part != "{prompt}")
    argv = substitute(command, {"prompt": prompt_arg, **values})
    # Not the home's path: an agent is given what it needs (see DESIGN.md, Processes).
    env = {**agent.env, "KUGETSU_TASK_ID": str(task.id), "KUGETSU_ATTEMPT": str(task.attempts)}
    return AgentCommand(tuple(argv), cwd, env, stdin, prompt_file, frozenset(agent.env), prompt, resume)
