"""Dependencies, per-agent limits, rate-limit cooldowns, idempotent keys, hooks, events -f,
worktree setup and base, requeue notes: each through a real supervisor and real agents."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, git, script, wait_until


def _records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_failed_dependency_fails_the_chain_and_after_any_still_runs(kg: Kugetsu) -> None:
    kg.write_config(queue={"max_attempts": 1})
    a = kg.add(script(["exit", 1]))
    b = kg.add(script(["ok"]), "--after", str(a))
    c = kg.add(script(["ok"]), "--after", str(b))
    d = kg.add(script(["ok"]), "--after-any", str(a))
    ok1 = kg.add(script(["ok"]))
    ok2 = kg.add(script(["ok"]), "--after", str(ok1))
    waiting = kg.task(b)
    assert waiting["wait_reason"].startswith(f"waiting for task {a}")
    done = kg.run()
    assert done.returncode == 1
    tasks = kg.tasks()
    assert tasks[a]["state"] == "failed"
    assert tasks[b]["state"] == "failed" and tasks[b]["reason"] == f"dependency {a} failed"
    assert tasks[c]["state"] == "failed" and tasks[c]["reason"] == f"dependency {b} failed"
    assert tasks[b]["attempts"] == 0  # it never ran
    assert tasks[d]["state"] == "succeeded"
    assert tasks[ok2]["state"] == "succeeded"
    assert tasks[ok2]["started_at"] >= tasks[ok1]["ended_at"]


def test_dependencies_run_in_order(kg: Kugetsu) -> None:
    starts = kg.root / "starts"
    a = kg.add(script(["record", starts], ["sleep", 0.2]))
    b = kg.add(script(["record", starts], ["sleep", 0.1]), "--after", str(a))
    c = kg.add(script(["record", starts]), "--after", f"{a},{b}")
    assert kg.run().returncode == 0
    assert [int(r["task"]) for r in _records(starts)] == [a, b, c]  # type: ignore[call-overload]


def test_max_live_per_agent_holds_while_other_agents_run(kg: Kugetsu) -> None:
    kg.write_config(
        capacity={"cap": 4},
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"], "max_live": 1},
            "other": {"command": [PY, FAKE_AGENT, "{prompt}"]},
        },
    )
    limited = [kg.add(script(["sleep", 0.3]), "--agent", "fake") for _ in range(4)]
    others = [kg.add(script(["sleep", 0.3]), "--agent", "other") for _ in range(4)]
    proc = kg.start_supervisor()
    seen_fake = seen_other = 0
    deadline = time.monotonic() + 30
    reasons: set[str] = set()
    while time.monotonic() < deadline:
        tasks = kg.tasks()
        live = [t for t in tasks.values() if t["state"] in ("starting", "running", "paused")]
        seen_fake = max(seen_fake, sum(t["agent"] == "fake" for t in live))
        seen_other = max(seen_other, sum(t["agent"] == "other" for t in live))
        reasons |= {t["wait_reason"] for t in tasks.values() if t["wait_reason"]}
        if all(tasks[i]["state"] == "succeeded" for i in limited + others):
            break
        time.sleep(0.02)
    kg.stop_supervisor(proc)
    assert all(kg.task(i)["state"] == "succeeded" for i in limited + others)
    assert seen_fake == 1
    assert seen_other >= 2  # the other agent filled the rest of the cap meanwhile
    assert any(r.startswith("agent fake at its limit (1/1 live)") for r in reasons)


def test_rate_limit_cools_the_agent_down_without_spending_attempts(kg: Kugetsu) -> None:
    counter = kg.root / "limited-runs"
    kg.write_config(
        capacity={"cap": 2},
        queue={"max_attempts": 1},
        agents={
            "fake": {
                "command": [PY, FAKE_AGENT, "{prompt}"],
                "rate_limit": ["429", "usage limit"],
                "cooldown": "1s",
            },
            "other": {"command": [PY, FAKE_AGENT, "{prompt}"]},
        },
    )
    # Rate limited twice (its log says 429), then it works.
    limited = kg.add(script(["say", "HTTP 429 Too Many Requests"], ["fail-then-ok", 2, counter]))
    others = [kg.add(script(["sleep", 0.2]), "--agent", "other") for _ in range(3)]
    proc = kg.start_supervisor()
    waiting = wait_until(
        lambda: "cooldown:" in (kg.task(limited)["wait_reason"] or "") and kg.task(limited),
        "the agent to cool down",
    )
    assert waiting["state"] == "queued" and waiting["attempts"] == 0
    for task in others:  # the other agent's tasks keep running meanwhile
        kg.wait_state(task, "succeeded")
    kg.wait_state(limited, "succeeded", timeout=30)
    kg.stop_supervisor(proc)
    assert kg.task(limited)["attempts"] == 1  # the two rate-limited runs were given back
    types = [e["type"] for e in kg.events()]
    assert types.count("cooldown_started") == 2 and "cooldown_ended" in types
    started = [e for e in kg.events() if e["type"] == "cooldown_started"]
    assert started[1]["seconds"] == 2 * started[0]["seconds"]  # exponential


def test_the_same_key_from_8_processes_at_once_makes_one_task(kg: Kugetsu) -> None:
    def add(_: int) -> subprocess.CompletedProcess[str]:
        return kg.cli("add", "--no-worktree", "--key", "build-42", "--", script(["ok"]))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(add, range(8)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    ids = {r.stdout.strip() for r in results}
    assert len(ids) == 1
    assert len(kg.tasks()) == 1
    assert kg.run().returncode == 0
    again = kg.cli("add", "--no-worktree", "--key", "build-42", "--", script(["ok"]))
    assert again.stdout.strip() != ids.pop()  # once settled, the key is free again


def test_a_hanging_hook_is_killed_and_never_blocks_admission(kg: Kugetsu) -> None:
    out = kg.root / "hook.out"
    kg.write_config(
        hooks=[
            {"on": ["task_completed"], "command": [PY, "-c", "import time; time.sleep(60)"], "timeout": "1s"},
            {
                "on": ["task_completed"],
                "command": [PY, "-c", f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())"],
            },
        ]
    )
    ids = [kg.add(script(["ok"])) for _ in range(3)]
    started = time.monotonic()
    assert kg.run().returncode == 0
    assert time.monotonic() - started < 20
    payloads = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(p["task_id"] for p in payloads) == ids
    assert all(p["type"] == "task_completed" for p in payloads)
    failures = [e for e in kg.events() if e["type"] == "hook_failed"]
    assert len(failures) == 3 and all("timed out" in f["error"] for f in failures)
    assert not [p for p in kg.our_processes(agents_only=False) if "time.sleep(60)" in " ".join(p.cmdline())]


def test_a_debounced_hook_gets_one_summary(kg: Kugetsu) -> None:
    out = kg.root / "summary.out"
    kg.write_config(
        queue={"max_attempts": 1},
        hooks=[
            {
                "on": ["task_completed", "task_error"],
                "command": [PY, "-c", f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())"],
                "debounce": "30s",
            }
        ],
    )
    for _ in range(3):
        kg.add(script(["ok"]))
    kg.add(script(["exit", 1]))
    assert kg.run().returncode == 1
    payloads = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(payloads) == 1  # flushed when the supervisor stopped, not 4 runs
    assert payloads[0]["type"] == "summary"
    assert payloads[0]["text"] in ("3 succeeded, 1 failed", "1 failed, 3 succeeded")


def test_events_follow_in_a_second_process_sees_every_event_in_order(kg: Kugetsu) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "kugetsu_tui", "events", "-f"], env=kg.env, stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(5):
            kg.add(script(["ok"]))
        assert kg.run().returncode == 0
        expected = [e["id"] for e in kg.events()]
        seen: list[int] = []
        assert follower.stdout is not None
        while len(seen) < len(expected):
            seen.append(json.loads(follower.stdout.readline())["id"])
        assert seen == expected
    finally:
        follower.kill()
        follower.wait()


def test_requeue_with_a_note_reaches_the_next_attempt(kg: Kugetsu) -> None:
    argv_file = kg.root / "argv.json"
    counter = kg.root / "runs"
    kg.write_config(queue={"max_attempts": 1})
    task = kg.add(script(["fail-then-ok", 1, counter], ["dump-argv", argv_file]))
    assert kg.run().returncode == 1
    code, _, err = kg.main("requeue", str(task), "--note", "the tests still fail")
    assert code == 0, err
    assert kg.run().returncode == 0
    (prompt,) = json.loads(argv_file.read_text())  # still one argv element
    assert prompt.endswith("\n\nNote for this attempt: the tests still fail")
    assert kg.task(task)["attempts"] == 1  # fresh attempts after a requeue


def test_worktree_setup_runs_first_and_its_failure_fails_the_attempt(kg: Kugetsu, repo: Path) -> None:
    marker = kg.root / "saw-setup"
    kg.write_config(worktree={"setup": [PY, "-c", "open('SETUP_DONE', 'w').write('ok')"]})
    ok = kg.add(script(["check", "SETUP_DONE", marker]), "--repo", str(repo))
    assert kg.run().returncode == 0
    assert marker.read_text() == "yes\n"
    kg.write_config(worktree={"setup": [PY, "-c", "raise SystemExit(3)"]}, queue={"max_attempts": 1})
    bad = kg.add(script(["ok"]), "--repo", str(repo))
    assert kg.run().returncode == 1
    task = kg.task(bad)
    assert (
        task["state"] == "failed" and "worktree setup" in task["reason"] and "exit code 3" in task["reason"]
    )
    assert kg.task(ok)["state"] == "succeeded"


def test_worktree_base_picks_the_starting_branch(kg: Kugetsu, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "FEATURE").write_text("x")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "feature work")
    git(repo, "checkout", "-q", "main")
    on_main_saw, on_feature_saw = kg.root / "main-saw", kg.root / "feature-saw"
    on_main = kg.add(script(["check", "FEATURE", on_main_saw]), "--repo", str(repo))
    on_feature = kg.add(
        script(["check", "FEATURE", on_feature_saw]), "--repo", str(repo), "--base", "feature"
    )
    assert kg.run().returncode == 0
    assert on_main_saw.read_text() == "no\n" and on_feature_saw.read_text() == "yes\n"
    assert kg.task(on_main)["base"] is None and kg.task(on_feature)["base"] == "feature"


def test_the_example_config_loads_and_documents_every_key() -> None:
    from kugetsu_tui.engine.config import load_config

    example = Path(__file__).parent.parent / "config" / "kugetsu.example.toml"
    config = load_config(example)
    assert config.cap == 3 and config.max_attempts == 3 and config.worktree_setup == ()
    text = example.read_text()
    for key in (
        "cap",
        "mode",
        "min",
        "max",
        "memory_reserve",
        "memory_pressure",
        "max_attempts",
        "retry_backoff",
        "expire_after",
        "kill_grace",
        "max_log",
        "on_interrupt",
        "setup",
        "base",
        "max_live",
        "rate_limit",
        "cooldown",
        "cooldown_max",
        "prompt_via",
        "est_rss",
        "est_cpu",
        "debounce",
        "timeout",
        "default_agent",
    ):
        assert f"{key} =" in text, key


def test_cancel_ends_a_hanging_worktree_setup_at_once(kg: Kugetsu, repo: Path) -> None:
    started = kg.root / "setup-started"
    kg.write_config(worktree={"setup": ["sh", "-c", f'touch "{started}"; exec sleep 300']})
    task = kg.add(script(["ok"]), "--repo", str(repo))
    kg.start_supervisor()
    wait_until(started.exists, "the worktree setup to start")
    code, _, err = kg.main("cancel", str(task))
    assert code == 0, err
    began = time.monotonic()
    kg.wait_state(task, "cancelled", timeout=10)
    assert time.monotonic() - began < 5  # not after the setup's 300 s
    assert "task_started" not in [e["type"] for e in kg.events(task)]
    wait_until(
        lambda: not [p for p in kg.our_processes(agents_only=False) if "sleep" in " ".join(p.cmdline())],
        "the setup's processes to end",
    )
