"""The command's contract for scripts: `status --json`, events, and the demo."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from tests.helpers.harness import Kugetsu, script

TASK_KEYS = {
    "id",
    "state",
    "prompt",
    "agent",
    "repo",
    "worktree",
    "priority",
    "attempts",
    "max_attempts",
    "exit_code",
    "created_at",
    "started_at",
    "ended_at",
    "position",
    "wait_reason",
}
STATES = {"queued", "starting", "running", "paused", "succeeded", "failed", "cancelled", "expired"}


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), f"{text} is not UTC"
    return when


def test_status_json_contract(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 2})
    gate = kg.root / "gate"
    done = kg.add(script(["ok"]))
    assert kg.run().returncode == 0
    kg.start_supervisor()
    running = [kg.add(script(["wait-file", gate])) for _ in range(2)]
    for task_id in running:
        kg.wait_state(task_id, "running")
    waiting = [kg.add(script(["ok"]), "--priority", str(p)) for p in (0, 3)]

    out = kg.cli("status", "--json")
    assert out.returncode == 0 and out.stderr == ""
    report = json.loads(out.stdout)
    assert (report["cap"], report["live"]) == (2, 2)
    assert set(report["counts"]) == STATES
    assert report["counts"]["running"] == 2 and report["counts"]["queued"] == 2
    assert report["counts"]["succeeded"] == 1
    tasks = {t["id"]: t for t in report["tasks"]}
    for task in tasks.values():
        assert set(task) >= TASK_KEYS
        assert _utc(task["created_at"])
    assert _utc(tasks[done]["started_at"]) <= _utc(tasks[done]["ended_at"])
    assert tasks[done]["exit_code"] == 0 and tasks[done]["position"] is None
    # The planner's view: the higher priority is next, and both say why they wait.
    assert [tasks[i]["position"] for i in waiting] == [2, 1]
    assert {tasks[i]["wait_reason"] for i in waiting} == {"cap full (2/2 live)"}
    for task_id in running:
        assert tasks[task_id]["state"] == "running" and tasks[task_id]["ended_at"] is None
    gate.touch()


def test_events_filters_and_lines(kg: Kugetsu) -> None:
    ok = kg.add(script(["ok"]))
    bad = kg.add(script(["exit", 2]), "--max-attempts", "1")
    assert kg.run().returncode == 1
    out = kg.cli("events", "--task", str(bad), "--type", "task_error")
    assert out.returncode == 0
    (line,) = out.stdout.splitlines()
    event = json.loads(line)
    assert (event["task_id"], event["type"], event["exit_code"]) == (bad, "task_error", 2)
    everything = [json.loads(line) for line in kg.cli("events").stdout.splitlines()]
    since = everything[3]["id"]
    later = [json.loads(line) for line in kg.cli("events", "--since", str(since)).stdout.splitlines()]
    assert later == everything[4:]
    assert {e["task_id"] for e in everything} >= {ok, bad}


def test_demo_headless_runs_the_real_engine(kg: Kugetsu) -> None:
    kg.env["KUGETSU_DEMO_SPEED"] = "0.02"
    where = kg.root / "demo"
    # Four tasks: the demo's first four prompts all succeed, so no retry backoff to wait out.
    out = kg.cli("demo", "--headless", "--tasks", "4", "--home", str(where), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout.splitlines()[-1]
    kg.home = where / "home"
    counts = kg.status()["counts"]
    assert counts["succeeded"] == sum(counts.values()) == 4
    assert not os.path.exists(kg.root / "work" / "CHANGES.md")


# --- outside text on a terminal -------------------------------------------------------

HOSTILE = "hello\x1b]0;owned\x07\x1b[2Jbye\x1b[31mRED\u202e"
OBEYED = ("\x1b", "\x07", "\u202e", "\x9b", "\x9d")  # what a terminal would act on


def assert_inert(text: str) -> None:
    found = [repr(c) for c in OBEYED if c in text]
    assert not found, f"{found} reached the terminal in {text!r}"


def test_text_from_prompts_agents_and_paths_reaches_the_terminal_inert(kg: Kugetsu) -> None:
    prompt = script(["say", HOSTILE], ["exit", 3])
    task = kg.add(prompt, "--max-attempts", "1")
    status = kg.cli("status")
    assert status.returncode == 0
    assert_inert(status.stdout)
    assert "hello" in status.stdout and "bye" in status.stdout

    run = kg.run()
    assert run.returncode == 1, run.stderr
    assert_inert(run.stdout + run.stderr)
    assert f"error      task {task} 1/1 [fake] say 'hello" in run.stdout

    logs = kg.cli("logs", str(task))
    assert_inert(logs.stdout)
    assert "hellobyeRED" in logs.stdout and logs.stdout.endswith("\n")

    # JSON stays exact: it escapes by itself.
    (row,) = json.loads(kg.cli("status", "--json").stdout)["tasks"]
    assert row["prompt"] == prompt
    queued = json.loads(kg.cli("events", "--task", str(task), "--type", "task_queued").stdout)
    assert queued["prompt"] == prompt

    bad = kg.cli("add", "--repo", f"/nowhere/{HOSTILE}", "x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert_inert(bad.stderr)
    assert "/nowhere/hello" in bad.stderr


def test_logs_keep_the_agents_lines_and_drop_its_escapes(kg: Kugetsu) -> None:
    task = kg.add(script(["say", "\x1b[1mbold\x1b[0m\tand\ttabs"], ["say", "next \x1b]0;t\x1b\\line"]))
    assert kg.run().returncode == 0
    shown = kg.cli("logs", str(task))
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("── attempt 1 · fake · started ") and lines[-1].startswith("── exit code 0 ")
    assert lines[1:-1] == ["bold\tand\ttabs", "next line"]
    follow = kg.cli("logs", "-f", str(task))
    assert follow.stdout == shown.stdout


def test_logs_of_a_task_without_output_say_so_on_stderr(kg: Kugetsu) -> None:
    task = kg.add(script(["ok"]))
    shown = kg.cli("logs", str(task))
    assert (shown.returncode, shown.stdout) == (0, "")
    assert f"task {task} (queued) has no output yet" in shown.stderr


def test_events_refuses_an_unknown_type_naming_the_known_ones(kg: Kugetsu) -> None:
    kg.add(script(["ok"]))
    out = kg.cli("events", "--type", "task_queued", "--type", "bogus")
    assert out.returncode == 2 and out.stdout == ""
    assert "unknown event type 'bogus' (expected one of: task_queued, " in out.stderr
    assert "task_adopted" in out.stderr


def test_status_says_kept_only_for_a_worktree_that_is_still_there(kg: Kugetsu, repo: Path) -> None:
    task = kg.add(
        script(["write", "out.txt", "half done"], ["exit", 1]), "--repo", str(repo), "--max-attempts", "1"
    )
    assert kg.run().returncode == 1
    worktree = kg.task(task)["worktree"]
    assert worktree and f"[kept {worktree}]" in kg.cli("status").stdout
    shutil.rmtree(worktree)
    shown = kg.cli("status").stdout
    assert "exit code 1" in shown
    assert "[kept" not in shown


def test_priority_reorders_the_queue_and_requeue_takes_a_new_prompt(kg: Kugetsu) -> None:
    """`priority N ID…` moves queued tasks (an event says from what); a settled task is
    refused; `requeue --prompt` replaces the prompt, a note still follows it; bad input is
    one line, exit 2, and changes nothing."""
    first, second = kg.add(script(["fail", 1])), kg.add(script(["fail", 1]))
    code, out, err = kg.main("priority", "5", str(second))
    assert code == 0 and f"task {second}: priority 5" in out, err
    queue = [(t["id"], t["position"]) for t in json.loads(kg.main("status", "--json")[1])["tasks"]]
    assert queue == [(second, 1), (first, 2)]
    (event,) = [e for e in kg.events(second) if e["type"] == "task_priority_set"]
    assert (event["priority"], event["was"]) == (5, 0)
    for bad in (
        ["priority", "high", str(first)],
        ["priority", "5", "0"],
        ["priority", "9999999", str(first)],
    ):
        done = kg.cli(*bad)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert kg.task(first)["priority"] == 0
    assert kg.run().returncode == 1  # both fail
    code, out, err = kg.main("priority", "3", str(first))
    assert code != 0 and "queued" in out + err
    code, out, err = kg.main("requeue", str(first), "--prompt", "do it right", "--note", "the tests")
    assert code == 0, err
    assert kg.task(first)["prompt"] == "do it right\n\nNote for this attempt: the tests"
    code, out, err = kg.main("requeue", str(second), "--prompt", " ")
    assert code == 2 and "empty prompt" in err and kg.task(second)["state"] == "failed"
