"""The real agent CLIs (installed from npm into a cache folder once per machine) run by
kugetsu against a mock of their API on 127.0.0.1: a file written in the worktree, the
result and usage read from what they printed, a bad key (fatal, not retried, then the
agent suspended), a rate limit (one cooldown for many attempts, from the reset the server
sent), an overloaded API, and a command that is not installed.

Skipped, with the reason, where npm or its registry cannot be reached.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine import agents
from tests.helpers.harness import PY, Kugetsu, git, make_repo, wait_until
from tests.mock_api.server import FILE_NAME, FILE_TEXT, FINAL_TEXT, PLANNED_TASK, MockAPI

# The versions the captures under tests/agent_output/ were made with.
PACKAGES = ("@anthropic-ai/claude-code@2.1.197", "@openai/codex@0.171.0", "opencode-ai@1.18.33")
CACHE = Path(os.environ.get("KUGETSU_TEST_NPM", Path.home() / ".cache" / "kugetsu-tests" / "npm"))


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    """The folder holding the installed `claude`, `codex` and `opencode` commands."""
    bin_dir = CACHE / "node_modules" / ".bin"
    stamp = CACHE / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(PACKAGES) and (bin_dir / "claude").exists():
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the real agent CLIs cannot be installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(CACHE),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                *PACKAGES,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install of the agent CLIs took over 10 minutes")
    if done.returncode != 0:
        pytest.skip(f"npm install of the agent CLIs failed: {done.stderr.strip().splitlines()[-1:]}")
    stamp.write_text(" ".join(PACKAGES))
    return bin_dir


@pytest.fixture
def api() -> Iterator[MockAPI]:
    server = MockAPI().start()
    yield server
    server.stop()


def claude_config(kg: Kugetsu, cli_bin: Path, api: MockAPI, cap: int = 3, **extra: Any) -> None:
    """The built-in claude agent, with only env (and extra keys) set: its preset command."""
    home = kg.root / "agent-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{cli_bin}:{os.environ['PATH']}",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": api.url,
        "ANTHROPIC_API_KEY": "sk-test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    kg.write_config(
        default_agent="claude",
        capacity={"cap": cap, "memory_reserve": 0},
        agents={"claude": {"env": env, **extra}},
    )


def test_claude_edits_in_its_worktree_and_its_result_and_usage_are_read(
    kg: Kugetsu, cli_bin: Path, api: MockAPI, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    claude_config(kg, cli_bin, api)
    task_id = kg.add("write hello.txt", "--repo", str(repo))
    result = kg.run(timeout=120)
    assert result.returncode == 0, result.stderr
    task = kg.task(task_id)
    assert task["state"] == "succeeded", task["reason"]
    assert task["result"] == FINAL_TEXT
    usage = task["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cost_usd"]) == (240, 60, 0.0027)
    assert "peak_rss" in usage  # measured usage stays beside the reported
    # The session the agent reported is kept on the task (what a resume would continue).
    reported = {
        json.loads(line).get("session_id")
        for line in kg.cli("logs", str(task_id)).stdout.splitlines()
        if line.startswith("{")
    }
    assert task["session_id"] in reported and re.fullmatch(r"[0-9a-f-]{36}", task["session_id"])
    # The log tells the attempt's story: where it began, and how it ended with what it used.
    log = kg.cli("logs", str(task_id)).stdout.splitlines()
    assert re.fullmatch(r"── attempt 1 · claude · started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ──", log[0])
    assert re.fullmatch(r"── exit code 0 · \d+\.\ds · 240 tokens in · 60 tokens out · \$0\.0027 ──", log[-1])
    # The edit landed: committed on the task's branch when the attempt succeeded.
    assert git(repo, "show", f"{task['branch']}:{FILE_NAME}") == FILE_TEXT
    assert "sk-test-key" not in kg.main("status", "--json", "--all")[1]


def test_a_bad_key_is_fatal_not_retried_and_suspends_claude_after_two(
    kg: Kugetsu, cli_bin: Path, api: MockAPI
) -> None:
    api.state.mode = "401"
    claude_config(kg, cli_bin, api, cap=1)
    ids = [kg.add(f"task {n}", "--max-attempts", "3") for n in range(3)]
    result = kg.run(timeout=120)
    assert result.returncode == 1
    tasks = kg.tasks()
    for task_id in ids[:2]:
        task = tasks[task_id]
        assert (task["state"], task["attempts"]) == ("failed", 1), task
        assert task["reason"].startswith("fatal: ") and "Invalid API key" in task["reason"]
    assert api.model_calls() == 2  # one request per task: nothing retried
    # The third never started: the agent is suspended, and the run ended with it queued.
    assert (tasks[ids[2]]["state"], tasks[ids[2]]["attempts"]) == ("queued", 0)
    warnings = [e for e in kg.events() if e["type"] == "supervisor_warning" and e.get("agent") == "claude"]
    assert len(warnings) == 1 and "suspended" in warnings[0]["suspended"]


def test_a_rate_limit_seen_by_three_agents_is_one_cooldown_until_the_reported_reset(
    kg: Kugetsu, cli_bin: Path, api: MockAPI
) -> None:
    api.state.mode = "429"
    api.state.retry_after = 40
    # claude would retry a 429 by itself, silently; kugetsu reads it in its output and ends
    # the attempt (no timeout is set) instead of letting it wait.
    claude_config(kg, cli_bin, api, cooldown="1s")
    ids = [kg.add(f"task {n}") for n in range(3)]
    kg.start_supervisor()

    def given_back() -> bool:
        events = kg.events()
        return all(any(e["type"] == "task_retrying" and e["task_id"] == i for e in events) for i in ids)

    wait_until(given_back, "all three attempts to be given back", timeout=90)
    tasks = kg.tasks()
    for task_id in ids:
        task = tasks[task_id]
        assert (task["state"], task["attempts"]) == ("queued", 0), task  # not counted as a failure
        assert "reset reported by the agent" in task["reason"]
    cooldowns = [e for e in kg.events() if e["type"] == "cooldown_started"]
    assert len(cooldowns) == 1, cooldowns  # one episode, however many attempts hit it
    assert cooldowns[0]["reset_reported"] is True
    assert 30 < cooldowns[0]["seconds"] <= 40  # the server's 40 s, counted from when it said so
    status = kg.status()
    assert "claude" in status["cooldowns"]
    waits = {t["id"]: t["wait_reason"] for t in status["tasks"]}
    assert all(waits[i] and "cooldown: claude" in waits[i] for i in ids), waits


def test_an_overloaded_api_529_is_a_rate_limit_not_a_failure(
    kg: Kugetsu, cli_bin: Path, api: MockAPI
) -> None:
    api.state.mode = "529"
    # claude retries 529 itself for a while (or gives up): either way, a rate limit.
    claude_config(kg, cli_bin, api, cooldown="30s", timeout="5s")
    task_id = kg.add("anything", "--max-attempts", "1")
    kg.start_supervisor()
    wait_until(
        lambda: any(e["type"] == "cooldown_started" for e in kg.events()), "a cooldown to start", timeout=60
    )
    task = kg.task(task_id)
    assert (task["state"], task["attempts"]) == ("queued", 0), task
    assert "529" in task["reason"] and "cooling down until" in task["reason"]


def test_after_a_rate_limit_claude_resumes_its_session(
    kg: Kugetsu, cli_bin: Path, api: MockAPI, tmp_path: Path
) -> None:
    """The retry runs `claude -p --resume ID`, in the same worktree: the conversation the
    API is sent holds the first prompt and then the message to go on."""
    api.state.mode, api.state.retry_after = "429", 1
    repo = make_repo(tmp_path / "repo")
    claude_config(kg, cli_bin, api, cooldown="1s")
    task_id = kg.add("write hello.txt", "--repo", str(repo))
    kg.start_supervisor()
    wait_until(
        lambda: any(e["type"] == "task_retrying" for e in kg.events(task_id)), "a rate limit", timeout=90
    )
    with api.state.lock:
        api.state.mode = "edit"
        api.state.bodies.clear()
    task = kg.wait_state(task_id, "succeeded", "failed", timeout=120)
    assert task["state"] == "succeeded", task["reason"]
    log = kg.cli("logs", str(task_id)).stdout
    assert f"resuming session {task['session_id']} after a rate limit ──" in log
    sent = [json.dumps(b.get("messages", "")) for b in api.state.bodies if "/messages" in b["path"]]
    assert any("write hello.txt" in m and "cut short by a rate limit" in m for m in sent), sent
    assert git(repo, "show", f"{task['branch']}:{FILE_NAME}") == FILE_TEXT


def test_a_claude_that_is_not_installed_fails_at_once(kg: Kugetsu, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    kg.write_config(default_agent="claude", agents={"claude": {"env": {"PATH": str(empty)}}})
    refused = kg.cli("add", "anything")
    assert refused.returncode == 2 and refused.stdout == "", refused
    assert (
        refused.stderr.count("\n") == 1
        and "agent 'claude': its program 'claude' is not found on PATH" in refused.stderr
    )
    assert "npm install -g @anthropic-ai/claude-code" in refused.stderr and "--force" in refused.stderr
    task_id = kg.add("anything", "--max-attempts", "3", "--force")
    result = kg.run(timeout=60)
    assert result.returncode == 1
    task = kg.task(task_id)
    assert (task["state"], task["attempts"]) == ("failed", 1)
    assert task["reason"] == "fatal: agent command 'claude' not found on PATH (not retried)"
    log = kg.cli("logs", str(task_id)).stdout.splitlines()
    assert log[0].startswith("── attempt 1 · claude · started ")
    assert log[1:] == ["── not started: agent command 'claude' not found on PATH ──"]


def codex_config(kg: Kugetsu, cli_bin: Path, api: MockAPI, cap: int = 3) -> None:
    """The built-in codex agent, pointed at the mock by its own config file (CODEX_HOME)."""
    codex_home = kg.root / "codex-home"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model_provider = "mock"\nmodel = "mock-model"\n'
        '[analytics]\nenabled = false\n[otel]\nmetrics_exporter = "none"\n[features]\nplugins = false\n'
        f'[model_providers.mock]\nname = "mock"\nbase_url = "{api.url}/v1"\nenv_key = "MOCK_API_KEY"\n'
        'wire_api = "responses"\nrequest_max_retries = 0\nstream_max_retries = 0\n'
    )
    env = {
        "PATH": f"{cli_bin}:{os.environ['PATH']}",
        "HOME": str(kg.root),
        "CODEX_HOME": str(codex_home),
        "MOCK_API_KEY": "sk-test-key",
    }
    kg.write_config(
        default_agent="codex", capacity={"cap": cap, "memory_reserve": 0}, agents={"codex": {"env": env}}
    )


def opencode_config(kg: Kugetsu, cli_bin: Path, api: MockAPI, cap: int = 3) -> None:
    """The built-in opencode agent with an OpenAI-compatible provider at the mock."""
    home = kg.root / "opencode-home"
    home.mkdir(exist_ok=True)
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "mock",
        "options": {"baseURL": f"{api.url}/v1", "apiKey": "sk-test-key"},
        "models": {"mock-model": {"name": "mock"}},
    }
    config = {
        "model": "mock/mock-model",
        "autoupdate": False,
        "share": "disabled",
        "provider": {"mock": provider},
        "permission": {"edit": "allow", "bash": "allow"},
    }
    env = {
        "PATH": f"{cli_bin}:{os.environ['PATH']}",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        # Its provider package is fetched from npm once and kept with the CLIs.
        "XDG_CACHE_HOME": str(CACHE.parent / "opencode-cache"),
        "OPENCODE_CONFIG_CONTENT": json.dumps(config),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    }
    kg.write_config(
        default_agent="opencode",
        capacity={"cap": cap, "memory_reserve": 0},
        agents={"opencode": {"env": env}},
    )


@pytest.mark.parametrize(
    ("configure", "usage"),
    [(codex_config, (400, 80, None)), (opencode_config, (300, 50, 0.0))],
    ids=["codex", "opencode"],
)
def test_codex_and_opencode_edit_and_their_result_and_usage_are_read(
    kg: Kugetsu, cli_bin: Path, api: MockAPI, tmp_path: Path, configure: Any, usage: tuple[Any, ...]
) -> None:
    repo = make_repo(tmp_path / "repo")
    configure(kg, cli_bin, api)
    task_id = kg.add("write hello.txt", "--repo", str(repo))
    result = kg.run(timeout=180)
    assert result.returncode == 0, result.stderr
    task = kg.task(task_id)
    assert task["state"] == "succeeded", task["reason"]
    assert task["result"] == FINAL_TEXT
    reported = task["usage"]
    # codex reports no cost: null, not a made-up 0
    assert (reported["input_tokens"], reported["output_tokens"], reported["cost_usd"]) == usage
    session = task["session_id"]  # codex's thread id, opencode's session id, as they printed it
    assert session and any(
        session in line for line in kg.cli("logs", str(task_id)).stdout.splitlines() if line.startswith("{")
    )
    assert git(repo, "show", f"{task['branch']}:{FILE_NAME}") == FILE_TEXT


@pytest.mark.parametrize("configure", [codex_config, opencode_config], ids=["codex", "opencode"])
def test_codex_and_opencode_with_a_bad_key_fail_at_once(
    kg: Kugetsu, cli_bin: Path, api: MockAPI, configure: Any
) -> None:
    api.state.mode = "401"
    configure(kg, cli_bin, api)
    task_id = kg.add("anything", "--max-attempts", "3")
    result = kg.run(timeout=180)
    assert result.returncode == 1
    task = kg.task(task_id)
    assert (task["state"], task["attempts"]) == ("failed", 1), task
    assert task["reason"].startswith("fatal: ") and "API key" in task["reason"]


HELP = {"claude": ("--help",), "codex": ("exec", "--help"), "opencode": ("run", "--help")}
# codex: exec's options before its resume subcommand, as the preset puts them.
RESUME_HELP = {
    "claude": ("--help",),
    "codex": ("exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", "resume", "--help"),
    "opencode": ("run", "--help"),
}


@pytest.mark.parametrize("name", sorted(HELP))
def test_every_option_of_a_preset_is_in_the_installed_clis_help(cli_bin: Path, name: str) -> None:
    preset = agents.PRESETS[name].command
    shown = subprocess.run(
        [str(cli_bin / name), *HELP[name]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(CACHE.parent), "PATH": f"{cli_bin}:{os.environ['PATH']}"},
    )
    text = shown.stdout + shown.stderr
    options = [part for part in preset[1:] if part.startswith("-")]
    assert options, preset
    for option in options:
        assert option in text, f"{name} no longer knows {option}"
    # The values given to options are among those the CLI offers.
    for option, value in itertools.pairwise(preset):
        if option in ("--permission-mode", "--output-format", "--sandbox", "--format"):
            assert value in text, f"{name} {option} {value} is not offered"


@pytest.mark.parametrize("name", sorted(RESUME_HELP))
def test_the_resume_form_of_a_preset_is_in_the_installed_clis_help(cli_bin: Path, name: str) -> None:
    form = agents.PRESETS[name].resume
    shown = subprocess.run(
        [str(cli_bin / name), *RESUME_HELP[name]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(CACHE.parent), "PATH": f"{cli_bin}:{os.environ['PATH']}"},
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout + shown.stderr
    said = form[form.index("{session}") - 1]  # the option or subcommand that takes the id
    assert said in (*RESUME_HELP[name], *re.findall(r"--[a-z-]+", text)), f"{name} no longer knows {said}"
    if name == "codex":  # its resume subcommand takes the id and the prompt, in that order
        assert re.search(r"\[SESSION_ID\]\s+\[PROMPT\]", text), text


def test_a_claude_planner_delegates_through_kugetsu_mcp(kg: Kugetsu, cli_bin: Path) -> None:
    """A real claude session as a planner: the model (the mock, in "plan" mode) calls
    kugetsu's add_task over MCP; the task it asked for is queued under the same cap, with
    the planner as its parent, and runs."""
    api = MockAPI("plan").start()
    try:
        mcp = {
            "mcpServers": {
                "kugetsu": {"command": PY, "args": ["-m", "kugetsu_tui", "--home", str(kg.home), "mcp"]}
            }
        }
        claude_config(
            kg,
            cli_bin,
            api,
            # (both take lists: a plain flag after them ends the list before the prompt)
            args=[
                "--mcp-config",
                json.dumps(mcp),
                "--allowedTools",
                "mcp__kugetsu__add_task",
                "--strict-mcp-config",
            ],
        )
        config = (kg.home / "config.toml").read_text()
        (kg.home / "config.toml").write_text(config + '\n[agents.worker]\ncommand = ["true", "{prompt}"]\n')
        planner = kg.add("plan the release", "--no-worktree")
        result = kg.run(timeout=180)
        assert result.returncode == 0, result.stderr
        tasks = kg.tasks()
        assert tasks[planner]["state"] == "succeeded", tasks[planner]["reason"]
        (child,) = [t for t in tasks.values() if t["id"] != planner]
        assert (child["prompt"], child["agent"], child["state"]) == (
            PLANNED_TASK["prompt"],
            "worker",
            "succeeded",
        )
        assert child["parent"] == planner and tasks[planner]["children"] == [child["id"]]
        # The model was told what add_task answered: the new task's id.
        answers = [b for b in api.state.bodies if '"tool_result"' in json.dumps(b.get("messages", ""))]
        assert answers and str(child["id"]) in json.dumps(answers[-1]["messages"][-1])
    finally:
        api.stop()
