"""A retry continues the agent's conversation where its preset knows how: after a rate
limit, a timeout or an interruption the next attempt runs the preset's resume form with the
session id its output reported, in the same folder, and the requeue note (else a short
message to go on) as its prompt; a plain failure, a replaced command and `resume = false`
start afresh.

build_command is checked for each built-in agent; then a real supervisor runs a `claude`
on PATH that is the fake agent (tests/fake_agent.py as-cli), recording each run's argv and
working directory, printing claude's stream-json session id and then hitting the trouble."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.commands import CONTINUE, build_command, resume_of
from kugetsu_tui.engine.config import AgentConfig, builtin_agents, config_from_dict
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import EndedBy, State, Task
from kugetsu_tui.engine.store import Store
from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, make_repo, wait_until

SESSION = "0b6a7c1e-5d2f-4c1a-9e8b-3f2d1c0b9a87"
PROMPT = "add a --json flag"


def a_task(**changes: Any) -> Task:
    task = Task(7, PROMPT, "claude", None, True, 0, 3, None, State.QUEUED, 2, False, 0.0, 0.0)
    return task.replace(**{"session_id": SESSION, "ended_by": str(EndedBy.RATE_LIMIT), **changes})


def argv(agent: AgentConfig, task: Task, tmp_path: Path) -> tuple[str, ...]:
    return build_command(agent, task, tmp_path, Home(tmp_path / "home")).argv


# --- build_command, for each preset ------------------------------------------------------

FRESH = {
    "claude": (
        "claude",
        "-p",
        "--permission-mode",
        "acceptEdits",
        "--output-format",
        "stream-json",
        "--verbose",
        PROMPT,
    ),
    "codex": ("codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", PROMPT),
    "opencode": ("opencode", "run", "--format", "json", PROMPT),
}
MESSAGE = CONTINUE.format(why="a rate limit")
CUT_BY = {
    EndedBy.RATE_LIMIT: "a rate limit",
    EndedBy.TIMEOUT: "a timeout",
    EndedBy.STALLED: "a stall",
    EndedBy.INTERRUPTED: "an interruption",
}
RESUMED = {
    "claude": (
        "claude",
        "-p",
        "--resume",
        SESSION,
        "--permission-mode",
        "acceptEdits",
        "--output-format",
        "stream-json",
        "--verbose",
        MESSAGE,
    ),
    "codex": (
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "--skip-git-repo-check",
        "resume",
        SESSION,
        MESSAGE,
    ),
    "opencode": ("opencode", "run", "--session", SESSION, "--format", "json", MESSAGE),
}


@pytest.mark.parametrize("name", sorted(RESUMED))
@pytest.mark.parametrize("why", sorted(CUT_BY))
def test_a_cut_short_attempt_is_continued_by_the_presets_resume_form(
    tmp_path: Path, name: str, why: EndedBy
) -> None:
    agent = builtin_agents()[name]
    task = a_task(agent=name, ended_by=str(why))
    command = build_command(agent, task, tmp_path, Home(tmp_path / "home"))
    after = CUT_BY[why]
    assert command.argv == (*RESUMED[name][:-1], CONTINUE.format(why=after))
    assert command.prompt == command.argv[-1]
    assert command.resume is not None
    assert command.resume.header() == f"resuming session {SESSION} after {after}"
    assert command.cwd == tmp_path


@pytest.mark.parametrize("name", sorted(FRESH))
@pytest.mark.parametrize("why", [None, EndedBy.FAILED, EndedBy.FATAL, EndedBy.CANCELLED, EndedBy.SUCCEEDED])
def test_a_plain_failure_or_a_first_attempt_starts_afresh(
    tmp_path: Path, name: str, why: EndedBy | None
) -> None:
    agent = builtin_agents()[name]
    task = a_task(agent=name, ended_by=None if why is None else str(why))
    assert argv(agent, task, tmp_path) == FRESH[name]
    assert resume_of(agent, task) is None


@pytest.mark.parametrize("name", sorted(FRESH))
def test_no_session_reported_starts_afresh(tmp_path: Path, name: str) -> None:
    agent = builtin_agents()[name]
    assert argv(agent, a_task(agent=name, session_id=None), tmp_path) == FRESH[name]
    # An id that is not one (read from output the agent does not fully control) is never put
    # on its command line.
    assert argv(agent, a_task(agent=name, session_id="--dangerous flag"), tmp_path) == FRESH[name]


def test_the_requeue_note_is_the_message_of_a_resumed_attempt(tmp_path: Path) -> None:
    agent = builtin_agents()["claude"]
    task = a_task(ended_by=str(EndedBy.TIMEOUT), requeue_note="the tests still fail")
    assert argv(agent, task, tmp_path) == (*RESUMED["claude"][:-1], "the tests still fail")
    # After a plain failure the note travels in the prompt (requeue appends it): a fresh start.
    assert argv(agent, task.replace(ended_by=str(EndedBy.FAILED)), tmp_path) == FRESH["claude"]


def test_resume_false_args_and_a_replaced_command(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "agents": {
                "claude": {"resume": False},
                "codex": {"args": ["--model", "o3"]},
                "opencode": {"command": ["opencode", "run", "{prompt}"]},
            }
        },
        tmp_path / "c.toml",
    )
    agents = config.agents
    assert argv(agents["claude"], a_task(), tmp_path) == FRESH["claude"]
    # args go where the resume form says: codex's before its `resume` subcommand
    codex = argv(agents["codex"], a_task(agent="codex"), tmp_path)
    assert codex == (*RESUMED["codex"][:6], "--model", "o3", *RESUMED["codex"][6:-1], MESSAGE)
    assert argv(agents["codex"], a_task(agent="codex", ended_by=None), tmp_path)[-3:] == (
        "--model",
        "o3",
        PROMPT,
    )
    # A command of one's own: how it would resume is not known, so it starts afresh.
    assert agents["opencode"].resume_command == ()
    assert argv(agents["opencode"], a_task(agent="opencode"), tmp_path) == ("opencode", "run", PROMPT)
    # Only the env set: the preset, resume form and all, stays.
    only_env = config_from_dict({"agents": {"claude": {"env": {"A": "b"}}}}, tmp_path / "c.toml")
    assert argv(only_env.agents["claude"], a_task(), tmp_path)[:4] == ("claude", "-p", "--resume", SESSION)


def test_a_resumed_message_goes_through_the_prompt_file_too(tmp_path: Path) -> None:
    agent = AgentConfig("claude", builtin_agents()["claude"].command, prompt_via="stdin")
    command = build_command(agent, a_task(), tmp_path, Home(tmp_path / "home"))
    assert command.stdin == command.prompt_file and command.prompt == MESSAGE
    assert command.argv == RESUMED["claude"][:-1]


# --- supervised, with a fake `claude` on PATH ------------------------------------------------

INIT = json.dumps({"type": "system", "subtype": "init", "session_id": SESSION})
DONE = json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "done"})


def fake_claude(kg: Kugetsu, plan: list[str], **agent: Any) -> Path:
    """A `claude` that is the fake agent, run by the preset's own command; returns the file
    its runs are recorded in (one JSON line each: argv and cwd)."""
    bin_dir = kg.root / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "claude"
    shim.write_text(f'#!/bin/sh\nexec "{PY}" "{FAKE_AGENT}" as-cli "$@"\n')
    shim.chmod(0o755)
    runs = kg.root / "runs.jsonl"
    (kg.root / "plan.json").write_text(json.dumps(plan))
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLI_LOG": str(runs),
        "FAKE_CLI_PLAN": str(kg.root / "plan.json"),
    }
    kg.write_config(agents={"claude": {"env": env, "cooldown": "0s", **agent}})
    return runs


def say(line: str) -> str:
    return "say " + "'" + line + "'"


def runs_of(log: Path, n: int) -> list[dict[str, Any]]:
    def recorded() -> list[dict[str, Any]] | None:
        lines = log.read_text().splitlines() if log.exists() else []
        return [json.loads(line) for line in lines] if len(lines) >= n else None

    result: list[dict[str, Any]] = wait_until(recorded, f"{n} runs of the agent", timeout=60)
    return result


def test_after_a_rate_limit_the_retry_resumes_the_session_in_the_same_worktree(
    kg: Kugetsu, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    log = fake_claude(kg, [f"{say(INIT)} ; say 'API Error: 429 rate limited' ; exit 1", f"{say(DONE)} ; ok"])
    kg.start_supervisor()
    task_id = kg.add(PROMPT, "--agent", "claude", "--repo", str(repo))
    task = kg.wait_state(task_id, "succeeded", timeout=60)
    first, second = runs_of(log, 2)
    assert first["argv"] == list(FRESH["claude"][1:])
    assert second["argv"] == list(RESUMED["claude"][1:])  # the message: "cut short by a rate limit"
    assert first["cwd"] == second["cwd"] == str(kg.home / "worktrees" / str(task_id))
    assert task["session_id"] == SESSION
    text = (kg.home / "runs" / str(task_id) / "log").read_text()
    assert f"resuming session {SESSION} after a rate limit ──" in text


def test_after_a_timeout_a_requeue_resumes_with_its_note(kg: Kugetsu, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    log = fake_claude(kg, [f"{say(INIT)} ; sleep 60", f"{say(DONE)} ; ok"])
    kg.start_supervisor()
    task_id = kg.add(
        PROMPT, "--agent", "claude", "--repo", str(repo), "--timeout", "3s", "--max-attempts", "1"
    )
    failed = kg.wait_state(task_id, "failed", timeout=60)
    assert failed["reason"] == "timed out after 3s"
    # (its clean worktree is removed in the background: requeued before that, the next
    # attempt could start in a folder about to go)
    wait_until(lambda: kg.task(task_id)["worktree"] is None, "the failed task's worktree to be removed")
    code, _, err = kg.main("requeue", str(task_id), "--note", "look at main.py first")
    assert code == 0, err
    kg.wait_state(task_id, "succeeded", timeout=60)
    first, second = runs_of(log, 2)
    assert second["argv"] == [*RESUMED["claude"][1:-1], "look at main.py first"]
    assert first["cwd"] == second["cwd"]  # the worktree made again where it was
    store = Store(kg.home / "state.db")
    try:
        task = store.get(task_id)
    finally:
        store.close()
    assert task is not None and task.prompt.endswith("Note for this attempt: look at main.py first")
    assert (task.ended_by, task.requeue_note) == ("succeeded", None)  # the note was given once


def test_after_an_interruption_the_next_supervisor_resumes(kg: Kugetsu) -> None:
    log = fake_claude(kg, [f"{say(INIT)} ; sleep 60", f"{say(DONE)} ; ok"])
    supervisor = kg.start_supervisor("--stop-agents")
    task_id = kg.add(PROMPT, "--agent", "claude")
    runs_of(log, 1)
    wait_until(lambda: SESSION in (kg.home / "runs" / str(task_id) / "log").read_text(), "the session id")
    kg.stop_supervisor(supervisor)
    assert kg.task(task_id)["state"] == "queued"
    kg.start_supervisor()
    kg.wait_state(task_id, "succeeded", timeout=60)
    first, second = runs_of(log, 2)
    assert second["argv"] == [*RESUMED["claude"][1:-1], CONTINUE.format(why="an interruption")]
    assert first["cwd"] == second["cwd"] == str(kg.work)


@pytest.mark.parametrize("case", ["plain failure", "resume = false"])
def test_a_plain_failure_or_resume_false_starts_afresh(kg: Kugetsu, case: str) -> None:
    trouble = (
        "say 'Error: the build broke'" if case == "plain failure" else "say 'API Error: 429 rate limited'"
    )
    agent = {"resume": False} if case == "resume = false" else {}
    log = fake_claude(kg, [f"{say(INIT)} ; {trouble} ; exit 1", f"{say(DONE)} ; ok"], **agent)
    kg.start_supervisor()
    task_id = kg.add(PROMPT, "--agent", "claude")
    kg.wait_state(task_id, "succeeded", timeout=60)
    first, second = runs_of(log, 2)
    assert first["argv"] == second["argv"] == list(FRESH["claude"][1:])
    assert "resuming" not in (kg.home / "runs" / str(task_id) / "log").read_text()
