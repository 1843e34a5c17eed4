"""Needs input, continued: answer rules for routine prompts, waiting that does not count
toward stall_after (nor, where the agent says so, the timeout), the events that record
input given, the hook recipes of the README run as the hooks run them, and `add`
refusing a terminal agent without tmux."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.supervisor.advisor import SAMPLE_EVERY
from tests.helpers.harness import FAKE_AGENT, PY, WAIT, Kugetsu, script, wait_until
from tests.test_terminal import _last_sample, _log_with, _needs_input, _nothing_left

README = Path(__file__).resolve().parent.parent / "README.md"
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="terminal agents need tmux")
RULE = {"match": r"Proceed\? \[y/N\]", "send": "y", "max": 3}


def _config(kg: Kugetsu, queue: dict[str, Any] | None = None, **tty: Any) -> None:
    kg.write_config(
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"]},
            "tty": {"command": [PY, FAKE_AGENT, "{prompt}"], "terminal": True, **tty},
        },
        queue=queue or {},
    )


def _given(kg: Kugetsu, task_id: int) -> list[dict[str, Any]]:
    return [e for e in kg.events(task_id) if e["type"] == "task_input_given"]


@needs_tmux
def test_a_rule_answers_a_routine_prompt_with_an_event_and_a_line_in_the_log(kg: Kugetsu) -> None:
    _config(kg, answer=[RULE])
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty")
    kg.wait_state(task_id, "succeeded", timeout=WAIT * 2)
    given = _given(kg, task_id)
    assert [(e["by"], e["send"], e["prompt"], e["rule"]) for e in given] == [
        ("rule", "y", "Proceed? [y/N]", 1)
    ]
    assert not [e for e in kg.events(task_id) if e["type"] == "task_needs_input"], "a rule answered it"
    log = _log_with(kg, task_id, "answered 'y'")
    assert "--- kugetsu: answered 'Proceed? [y/N]' with 'y' (answer rule 1: 1 of 3) ---" in log
    _nothing_left(kg)


@needs_tmux
def test_a_rule_answers_at_most_max_times_then_the_prompt_raises_the_flag(kg: Kugetsu) -> None:
    _config(kg, answer=[{"match": r"\[y/N\]\s*$", "send": "y", "max": 2}])
    kg.start_supervisor()
    task_id = kg.add("ask-times 3", "--agent", "tty")
    assert "Proceed? [y/N]" in _needs_input(kg, task_id)
    assert [e["by"] for e in _given(kg, task_id)] == ["rule", "rule"]
    assert kg.main("send", str(task_id), "y")[0] == 0
    kg.wait_state(task_id, "succeeded")
    assert [e["by"] for e in _given(kg, task_id)] == ["rule", "rule", "person"]
    _nothing_left(kg)


@needs_tmux
def test_a_rules_count_survives_a_killed_supervisor(kg: Kugetsu) -> None:
    """max holds per attempt across a supervisor crash: its successor counts the answers
    from the events and leaves the next prompt to a person."""
    _config(kg, answer=[{**RULE, "max": 1}])
    first = kg.start_supervisor()
    task_id = kg.add("ask-times 3", "--agent", "tty")
    wait_until(lambda: _given(kg, task_id), "the rule to answer", WAIT * 2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(WAIT)
    kg.start_supervisor()
    wait_until(lambda: "task_adopted" in [e["type"] for e in kg.events(task_id)], "the adoption")
    for _ in range(2):
        _needs_input(kg, task_id)
        assert [e["by"] for e in _given(kg, task_id)].count("rule") == 1
        assert kg.main("send", str(task_id), "y")[0] == 0
    kg.wait_state(task_id, "succeeded")
    _nothing_left(kg)


@needs_tmux
def test_a_prompt_no_rule_matches_still_raises_the_flag_and_send_is_recorded(kg: Kugetsu) -> None:
    _config(kg, answer=[{"match": "Overwrite the file\\?", "send": "y"}])
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty")
    assert "Proceed? [y/N]" in _needs_input(kg, task_id)
    assert _given(kg, task_id) == []
    assert kg.main("send", str(task_id), "y")[0] == 0
    task = kg.wait_state(task_id, "succeeded")
    assert task["needs_input"] is None
    (given,) = _given(kg, task_id)
    assert (given["by"], given["via"], given["was"]) == ("person", "send", "Proceed? [y/N]")
    _nothing_left(kg)


@pytest.mark.parametrize(
    ("rule", "detail"),
    [
        ({"match": "Proceed\\? [y/N", "send": "y"}, "answer: #1 match: 'Proceed\\\\? [y/N' is not a regular"),
        ({"match": "x", "send": "y\n"}, "answer: #1 send: expected text without control characters"),
        ({"match": "x", "send": "y", "max": 0}, "answer: #1 max: expected a whole number from 1 to 100"),
        ({"match": "x", "send": "y", "when": 1}, "answer: #1: unknown key when"),
    ],
)
def test_a_bad_answer_rule_is_one_line_naming_the_agent_and_key(
    kg: Kugetsu, rule: dict[str, Any], detail: str
) -> None:
    _config(kg, answer=[rule])
    done = kg.cli("add", "--agent", "tty", "--no-worktree", "ask")
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"[agents.tty] {detail}" in done.stderr
    assert kg.tasks() == {}


def test_answer_rules_are_read_from_arrays_of_tables_and_are_off_by_default(tmp_path: Path) -> None:
    from kugetsu_tui.engine.config import Answer, load_config

    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[agents.tty]
command = [{json.dumps(PY)}, "agent.py", "{{prompt}}"]
terminal = true
timeout_counts_waiting = false

[[agents.tty.answer]]
match = "Proceed\\\\? \\\\[y/N\\\\]"
send = "y"

[[agents.tty.answer]]
match = "Press Enter"
send = ""
max = 1
"""
    )
    config = load_config(path)
    tty = config.agents["tty"]
    assert tty.answer == (Answer(r"Proceed\? \[y/N\]", "y", 3), Answer("Press Enter", "", 1))
    assert tty.timeout_counts_waiting is False
    assert config.agents["claude"].answer == () and config.agents["claude"].timeout_counts_waiting


@needs_tmux
@pytest.mark.parametrize("counts", [False, True])
def test_waiting_for_a_person_is_no_stall_and_pauses_the_timeout_unless_it_counts(
    kg: Kugetsu, counts: bool
) -> None:
    """With a short timeout and stall_after (on_stall = "fail"), a task that waits longer
    than both is neither stalled nor, with timeout_counts_waiting = false, timed out; with
    true (the default) the timeout ends it as before."""
    _config(kg, {"max_attempts": 1}, stall_after="5s", on_stall="fail", timeout_counts_waiting=counts)
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty", "--timeout", "10s", "--max-attempts", "1")
    kg.wait_state(task_id, "running")
    started = time.time()  # (or a moment after it started)
    _needs_input(kg, task_id)
    if counts:
        task = kg.wait_state(task_id, "failed", timeout=WAIT * 2)
        assert task["reason"] == "timed out after 10s"
    else:
        after = started + 10 + SAMPLE_EVERY
        wait_until(lambda: _last_sample(kg) > after, "a sample past the timeout", WAIT * 2)
        assert kg.task(task_id)["state"] == "running"
        assert kg.main("send", str(task_id), "y")[0] == 0
        kg.wait_state(task_id, "succeeded")
    assert "task_stalled" not in [e["type"] for e in kg.events(task_id)]
    _nothing_left(kg)


@needs_tmux
def test_a_paused_timeout_stays_paused_for_a_supervisor_that_adopts_the_task(kg: Kugetsu) -> None:
    """The successor of a killed supervisor adds the time the task's events say it waited."""
    _config(kg, {"max_attempts": 1}, timeout_counts_waiting=False)
    first = kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty", "--timeout", "10s", "--max-attempts", "1")
    kg.wait_state(task_id, "running")
    started = time.time()
    _needs_input(kg, task_id)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(WAIT)
    # No supervisor until the attempt's first deadline has passed: only the wait it adds
    # keeps the successor from ending the task at once.
    wait_until(lambda: time.time() > started + 11, "the first deadline to pass", WAIT)
    kg.start_supervisor()
    wait_until(lambda: "task_adopted" in [e["type"] for e in kg.events(task_id)], "the adoption")
    wait_until(lambda: _last_sample(kg) > started + 11 + SAMPLE_EVERY, "a sample after it", WAIT * 2)
    assert kg.task(task_id)["state"] == "running"
    assert kg.main("send", str(task_id), "y")[0] == 0
    kg.wait_state(task_id, "succeeded")
    _nothing_left(kg)


def test_add_refuses_a_terminal_agent_when_tmux_is_not_on_path(kg: Kugetsu, tmp_path: Path) -> None:
    _config(kg)
    (tmp_path / "empty").mkdir()
    kg.env["PATH"] = str(tmp_path / "empty")
    done = kg.cli("add", "--agent", "tty", "--no-worktree", "ask")
    assert done.returncode == 2, done
    assert done.stderr == (
        "kugetsu: error: agent 'tty' has terminal = true, which needs tmux, not found on PATH "
        "(expected tmux installed, e.g. apt install tmux, or an agent without terminal = true)\n"
    )
    assert kg.tasks() == {}
    assert kg.cli("add", "--agent", "fake", "--no-worktree", "ok").returncode == 0, "others are queued"


# --- the hook recipes of the README, run as the hooks run them ---------------------------


def _readme_block(lang: str, after: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(after) + r".*?```" + lang + r"\n(.*?)```", text, re.S)
    assert found, f"no ```{lang} block after {after!r} in README.md"
    return found.group(1)


def _claude_hooks() -> dict[str, str]:
    settings = json.loads(_readme_block("json", "For Claude Code, in `.claude/settings.json`"))
    return {event: entry[0]["hooks"][0]["command"] for event, entry in settings["hooks"].items()}


def _codex_notify() -> list[str]:
    import tomllib

    argv: list[str] = tomllib.loads(_readme_block("toml", "For codex, in"))["notify"]
    return argv


def _on_path(kg: Kugetsu, tmp_path: Path) -> None:
    """`kugetsu` on the agents' PATH, as an installed one is, finding the test's home as an
    installed one finds the default home (agents are not told KUGETSU_HOME)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    home = shlex.quote(str(kg.home))
    (bin_dir / "kugetsu").write_text(f'#!/bin/sh\nKUGETSU_HOME={home} exec {PY} -m kugetsu_tui "$@"\n')
    (bin_dir / "kugetsu").chmod(0o755)
    kg.env["PATH"] = f"{bin_dir}:{kg.env['PATH']}"


def test_the_claude_code_hooks_of_the_readme_raise_and_clear_the_flag(kg: Kugetsu, tmp_path: Path) -> None:
    hooks = _claude_hooks()
    assert set(hooks) == {"Notification", "Stop", "UserPromptSubmit"}
    _on_path(kg, tmp_path)
    kg.start_supervisor()
    # What Claude Code sends each hook on stdin.
    common = {"session_id": "abc", "transcript_path": "/tmp/t.jsonl", "cwd": str(kg.work)}
    payloads = {
        "Notification": {
            **common,
            "hook_event_name": "Notification",
            "message": "Claude needs your permission to use Bash",
        },
        "Stop": {**common, "hook_event_name": "Stop", "stop_hook_active": False},
        "UserPromptSubmit": {**common, "hook_event_name": "UserPromptSubmit", "prompt": "go on"},
    }
    files = {}
    for event, payload in payloads.items():
        files[event] = tmp_path / f"{event}.json"
        files[event].write_text(json.dumps(payload))
    gates = {name: kg.root / name for name in ("stop", "prompt", "done")}
    task_id = kg.add(
        script(
            ["run-hook", files["Notification"], hooks["Notification"]],
            ["wait-file", gates["stop"]],
            ["run-hook", files["Stop"], hooks["Stop"]],
            ["run-hook", files["Notification"], hooks["Notification"]],
            ["wait-file", gates["prompt"]],
            ["run-hook", files["UserPromptSubmit"], hooks["UserPromptSubmit"]],
            ["wait-file", gates["done"]],
        )
    )
    assert _needs_input(kg, task_id) == "Claude needs your permission to use Bash"
    gates["stop"].touch()
    wait_until(lambda: len(_given(kg, task_id)) == 1, "the Stop hook to clear the flag")
    _needs_input(kg, task_id)
    gates["prompt"].touch()
    wait_until(lambda: len(_given(kg, task_id)) == 2, "the UserPromptSubmit hook to clear it")
    assert kg.task(task_id)["needs_input"] is None
    gates["done"].touch()
    kg.wait_state(task_id, "succeeded")
    assert [(e["by"], e["was"]) for e in _given(kg, task_id)] == [
        ("notify", "Claude needs your permission to use Bash")
    ] * 2
    ran = [line for f in files.values() for line in Path(f"{f}.exit").read_text().splitlines()]
    assert ran == ["0 '' ''"] * 4, "every hook exited 0, printing nothing"


def test_the_codex_notify_program_of_the_readme_raises_the_flag(kg: Kugetsu, tmp_path: Path) -> None:
    argv = _codex_notify()
    _on_path(kg, tmp_path)
    kg.start_supervisor()
    # codex runs the program with the JSON as its last argument.
    payload = {
        "type": "agent-turn-complete",
        "turn-id": "12345",
        "input-messages": ["fix the test"],
        "last-assistant-message": "Fixed it. Shall I also update the docs?",
    }
    empty = tmp_path / "empty.json"
    empty.write_text("")
    gate = kg.root / "gate"
    command = shlex.join([*argv, json.dumps(payload)])
    task_id = kg.add(script(["run-hook", empty, command], ["wait-file", gate]))
    assert _needs_input(kg, task_id) == "turn complete: Fixed it. Shall I also update the docs?"
    gate.touch()
    kg.wait_state(task_id, "succeeded")


def test_the_hook_command_outside_an_agent_does_nothing_and_never_exits_2(kg: Kugetsu) -> None:
    notification = json.dumps({"hook_event_name": "Notification", "message": "hi"})
    done = kg.cli("notify", "--hook", input=notification)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = kg.cli("notify", "--hook", input="not json")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "not JSON" in done.stderr
    done = kg.cli("notify", "--clear")
    assert done.returncode == 2 and "inside an agent" in done.stderr


def test_notify_clear_lowers_the_flag_with_an_event(kg: Kugetsu) -> None:
    gate = kg.root / "gate"
    kg.start_supervisor()
    task_id = kg.add(script(["wait-file", gate]))
    kg.wait_state(task_id, "running")
    assert kg.main("notify", "--task", str(task_id), "look at this")[0] == 0
    assert kg.task(task_id)["needs_input"] == "look at this"
    code, _, err = kg.main("notify", "--task", str(task_id), "--clear", "and this")
    assert code == 2 and "not both" in err
    assert kg.main("notify", "--task", str(task_id), "--clear")[0] == 0
    assert kg.task(task_id)["needs_input"] is None
    assert [(e["by"], e["was"]) for e in _given(kg, task_id)] == [("notify", "look at this")]
    gate.touch()
    kg.wait_state(task_id, "succeeded")


def test_output_after_the_flag_clears_it_with_an_event(kg: Kugetsu) -> None:
    kg.start_supervisor()
    answered, done = kg.root / "answered", kg.root / "done"
    steps = (["notify", kg.home, "waiting"], ["wait-file", answered], ["say", "going on"])
    task_id = kg.add(script(*steps, ["wait-file", done]))
    _needs_input(kg, task_id)
    raised = time.time()
    wait_until(lambda: _last_sample(kg) > raised + SAMPLE_EVERY, "a sample after the flag", WAIT * 2)
    answered.touch()
    wait_until(lambda: _given(kg, task_id), "new output to clear the flag", WAIT * 2)
    assert [(e["by"], e["was"]) for e in _given(kg, task_id)] == [("output", "waiting")]
    done.touch()
    kg.wait_state(task_id, "succeeded")


@needs_tmux
def test_the_demo_shows_a_terminal_task_that_waits_for_input(kg: Kugetsu) -> None:
    from tests.test_first_run import _demo

    out = _demo(kg, kg.env["PATH"])
    assert out.returncode == 0, out.stderr
    kg.home = kg.root / "demo" / "home"
    (task,) = [t for t in kg.tasks().values() if t["prompt"].startswith("ask:")]
    assert task["state"] == "succeeded", task
    kinds = [(e["type"], e.get("by")) for e in kg.events(task["id"])]
    assert ("task_needs_input", "screen") in kinds and ("task_input_given", "demo") in kinds
    assert "Apply the migration to the demo database? [y/N]" in _log_with(kg, task["id"], "done")
    _nothing_left(kg)
