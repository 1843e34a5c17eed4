"""`kugetsu run --headless` with real agents: the cap, the order, retries, timeouts, expiry."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import NewTask
from kugetsu_tui.engine.store import Store
from kugetsu_tui.headless import event_line
from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, ended, make_repo, script, wait_until


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_cap_is_never_exceeded_in_the_process_table(kg: Kugetsu) -> None:
    """30 tasks at cap 3, counted from the OS process table every ~10 ms."""
    starts = kg.root / "starts"
    ids = [kg.add(script(["record", starts], ["sleep", 0.1 + (i % 4) * 0.1])) for i in range(30)]

    counts: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            counts.append(len(kg.agent_processes()))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = kg.run()
    finally:
        done.set()
        sampler.join()

    assert result.returncode == 0, result.stderr
    assert max(counts) <= 3, f"saw {max(counts)} agents at once with cap 3"
    assert max(counts) == 3, "the cap was reached, so the bound above was tested"
    assert len(counts) > 50
    assert sorted(int(r["task"]) for r in _records(starts)) == ids  # type: ignore[arg-type]
    assert {t["state"] for t in kg.tasks().values()} == {"succeeded"}


def test_priority_first_then_first_come_first_served(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 1})
    starts = kg.root / "starts"
    priorities = [0, 5, 0, 5, 1, -2, 1, 0, 5]
    ids = [kg.add(script(["record", starts]), "--priority", str(p)) for p in priorities]
    expected = [i for _, i in sorted(zip(priorities, ids, strict=True), key=lambda pi: (-pi[0], pi[1]))]

    # Before anything runs, status already tells each task its place in that order.
    tasks = kg.tasks()
    assert sorted(ids, key=lambda i: tasks[i]["position"]) == expected
    assert all(tasks[i]["wait_reason"].startswith("no supervisor running") for i in ids)

    result = kg.run()
    assert result.returncode == 0, result.stderr
    assert [int(r["task"]) for r in _records(starts)] == expected  # type: ignore[arg-type]


def test_retries_with_backoff_then_success(kg: Kugetsu) -> None:
    counter = kg.root / "counter"
    starts = kg.root / "starts"
    task_id = kg.add(script(["record", starts], ["fail-then-ok", 2, counter]), "--max-attempts", "3")

    result = kg.run()
    assert result.returncode == 0, result.stdout + result.stderr
    task = kg.task(task_id)
    assert (task["state"], task["attempts"], task["exit_code"]) == ("succeeded", 3, 0)
    assert counter.read_text() == "3", "the agent ran exactly three times"
    assert [r["attempt"] for r in _records(starts)] == ["1", "2", "3"]

    events = kg.events(task_id)
    retries = [e for e in events if e["type"] == "task_retrying"]
    assert [e["retry_in"] for e in retries] == [0.2, 0.4], "exponential backoff from retry_backoff"
    assert all(e["reason"] == "exit code 1" for e in retries)
    started = [e for e in events if e["type"] == "task_started"]
    assert len(started) == 3
    for retry, again in zip(retries, started[1:], strict=True):
        waited = _ts(again["ts"]) - _ts(retry["ts"])
        assert waited >= retry["retry_in"] - 0.002, f"restarted after {waited:.3f}s, before its backoff"

    logs = kg.cli("logs", str(task_id))
    assert logs.returncode == 0
    log = logs.stdout
    assert log.count("failing on purpose") == 2
    # Each attempt's part of the log opens with a header and closes with how it ended.
    marks = [line for line in log.splitlines() if line.startswith("── ")]
    assert [m.split(" · ")[0] for m in marks] == [
        "── attempt 1",
        "── exit code 1",
        "── attempt 2",
        "── exit code 1",
        "── attempt 3",
        "── exit code 0",
    ], log
    assert all(" · fake · started " in m for m in marks[::2]) and all(m.endswith("s ──") for m in marks[1::2])


def test_a_task_that_keeps_failing_fails_and_the_run_exits_1(kg: Kugetsu) -> None:
    counter = kg.root / "counter"
    bad = kg.add(script(["fail-then-ok", 99, counter]), "--max-attempts", "2")
    odd = kg.add(script(["exit", 7]), "--max-attempts", "1")
    good = kg.add(script(["ok"]))

    result = kg.run()
    assert result.returncode == 1
    tasks = kg.tasks()
    assert (tasks[bad]["state"], tasks[bad]["attempts"], tasks[bad]["exit_code"]) == ("failed", 2, 1)
    assert counter.read_text() == "2"
    assert (tasks[odd]["state"], tasks[odd]["exit_code"], tasks[odd]["reason"]) == (
        "failed",
        7,
        "exit code 7",
    )
    assert tasks[good]["state"] == "succeeded"
    types = [e["type"] for e in kg.events(bad)]
    assert types.count("task_retrying") == 1 and types[-1] == "task_error"


def test_exit_code_0_and_json_event_lines(kg: Kugetsu) -> None:
    ids = [kg.add(script(["ok"])) for _ in range(3)]
    result = kg.run("--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "supervisor_started" and events[-1]["type"] == "supervisor_stopped"
    for event in events:
        assert set(event) >= {"id", "ts", "type", "task_id"}
        datetime.fromisoformat(event["ts"])
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    for task_id in ids:
        mine = [e["type"] for e in events if e["task_id"] == task_id]
        assert mine == ["task_dequeued", "task_started", "task_completed"]
        completed = next(e for e in events if e["task_id"] == task_id and e["type"] == "task_completed")
        assert completed["state"] == "succeeded" and completed["exit_code"] == 0


def test_timeout_ends_the_attempt_and_counts_as_a_failure(kg: Kugetsu) -> None:
    starts = kg.root / "starts"
    plain = kg.add(script(["record", starts], ["hang", 60]), "--timeout", "0.5s", "--max-attempts", "2")
    stubborn = kg.add(
        script(["ignore-term"], ["record", starts], ["hang", 60]), "--timeout", "0.5s", "--max-attempts", "1"
    )
    result = kg.run()
    assert result.returncode == 1
    tasks = kg.tasks()
    assert (tasks[plain]["state"], tasks[plain]["attempts"]) == ("failed", 2)
    assert tasks[plain]["reason"] == "timed out after 0.5s"
    assert tasks[stubborn]["state"] == "failed" and tasks[stubborn]["reason"] == "timed out after 0.5s"
    # Each attempt ran at least its timeout and was then ended: nothing of it is left.
    retry = next(e for e in kg.events(plain) if e["type"] == "task_retrying")
    assert retry["reason"] == "timed out after 0.5s"
    for record in _records(starts):
        assert ended(int(record["pid"]))  # type: ignore[arg-type]
    assert kg.our_processes() == []


def test_a_queued_task_expires_and_a_held_one_does_not(kg: Kugetsu) -> None:
    kg.write_config(queue={"expire_after": "0.3s"})
    starts = kg.root / "starts"
    waiting = [kg.add(script(["record", starts])) for _ in range(2)]
    held = kg.add(script(["record", starts]))
    assert kg.main("hold", str(held))[0] == 0
    time.sleep(0.4)  # not a barrier: time passes beyond expire_after before a supervisor looks

    result = kg.run()
    assert result.returncode == 1, "an expired task makes the run fail"
    tasks = kg.tasks()
    for task_id in waiting:
        assert (tasks[task_id]["state"], tasks[task_id]["attempts"]) == ("expired", 0)
        assert tasks[task_id]["reason"] == "waited longer than 0.3s"
        assert [e["type"] for e in kg.events(task_id)][-1] == "task_expired"
    assert tasks[held]["state"] == "queued" and tasks[held]["held"] is True
    assert tasks[held]["wait_reason"].startswith("held")
    assert _records(starts) == [], "nothing ran"


def test_a_task_waiting_behind_the_cap_expires(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 1}, queue={"expire_after": "1s"})
    gate = kg.root / "gate"
    starts = kg.root / "starts"
    kg.start_supervisor()
    first = kg.add(script(["record", starts], ["wait-file", gate]))
    kg.wait_state(first, "running")
    behind = kg.add(script(["record", starts]))
    held = kg.add(script(["record", starts]))
    assert kg.main("hold", str(held))[0] == 0
    assert kg.task(behind)["wait_reason"] == "cap full (1/1 live)"

    task = kg.wait_state(behind, "expired")
    assert task["reason"] == "waited longer than 1s"
    assert kg.task(held)["state"] == "queued", "held tasks never expire"

    # Released, the held task waits its turn like any other.
    assert kg.main("release", str(held))[0] == 0
    gate.touch()
    kg.wait_state(first, "succeeded")
    kg.wait_state(held, "succeeded")
    assert [int(r["task"]) for r in _records(starts)] == [first, held]  # type: ignore[arg-type]


def test_logs_show_everything_the_agent_printed(kg: Kugetsu) -> None:
    lines = 50_000
    task_id = kg.add(script(["print-lines", lines]))
    assert kg.run().returncode == 0
    shown = kg.cli("logs", str(task_id))
    assert shown.returncode == 0 and shown.stderr == ""
    out = shown.stdout.splitlines()
    assert out[0].startswith("── attempt 1 · fake · started ") and out[-1].startswith("── exit code 0 · ")
    assert out[1 : lines + 1] == [f"line {i}" for i in range(lines)]
    assert "fake-agent: to stderr" in out
    follow = kg.cli("logs", "-f", str(task_id), timeout=20)  # a settled task: -f ends at once
    assert follow.stdout == shown.stdout


def test_a_prompt_arrives_byte_exact_as_one_argument(kg: Kugetsu) -> None:
    dumps = kg.root / "argv"
    dumps.mkdir()
    kg.write_config(
        agents={"argv": {"command": [PY, FAKE_AGENT, "dump-argv", f"{dumps}/{{task_id}}.json", "{prompt}"]}},
        default_agent="argv",
    )
    prompts = [
        "-rf / --version",
        "--help",
        "$(touch pwned) `touch pwned` ; touch pwned && echo hi | cat > pwned 2>&1 &",
        "line one\nline two\n\n\ttabbed 'single' \"double\" \\back\\slash *.py ~ $HOME %s",
        "   leading and trailing spaces   ",
        "ünïcödé ✓ 日本語",
        "placeholders stay put: {prompt} {task_id} {worktree}",
    ]
    ids = {}
    for prompt in prompts[:3]:  # through the real command line
        added = kg.cli("add", "--no-worktree", "--", prompt)
        assert added.returncode == 0, added.stderr
        ids[int(added.stdout)] = prompt
    lines = "".join(json.dumps({"prompt": p, "no_worktree": True}) + "\n" for p in prompts[3:])
    added = kg.cli("add", "--from-file", "-", input=lines)
    assert added.returncode == 0, added.stderr
    ids.update(zip(map(int, added.stdout.split()), prompts[3:], strict=True))

    assert kg.run().returncode == 0
    for task_id, prompt in ids.items():
        dump = dumps / f"{task_id}.json"
        assert json.loads(dump.read_text(encoding="utf-8")) == ["dump-argv", str(dump), prompt]
        assert kg.task(task_id)["prompt"] == prompt
    assert not (kg.work / "pwned").exists()


def test_the_run_waits_for_a_task_in_backoff(kg: Kugetsu) -> None:
    """A queue whose only task waits out its backoff is not drained yet."""
    kg.write_config(queue={"retry_backoff": "1s"})
    counter = kg.root / "counter"
    task_id = kg.add(script(["fail-then-ok", 1, counter]))
    proc = kg.popen("run", "--headless")
    wait_until(lambda: kg.task(task_id)["attempts"] == 1 and kg.task(task_id)["state"] == "queued", "a retry")
    task = kg.task(task_id)
    assert task["wait_reason"].startswith("backoff until") and "attempt 2 of 3" in task["wait_reason"]
    assert task["not_before"] is not None
    assert proc.wait(20) == 0
    assert kg.task(task_id)["state"] == "succeeded"


def test_an_agent_that_cannot_start_fails_at_once_with_the_reason(kg: Kugetsu) -> None:
    kg.write_config(agents={"ghost": {"command": ["no-such-agent-on-path", "{prompt}"]}})
    task_id = kg.add("anything", "--agent", "ghost", "--max-attempts", "2", "--force")
    result = kg.run()
    assert result.returncode == 1
    task = kg.task(task_id)
    # A missing command is fatal: no second attempt, whatever max_attempts allows.
    assert (task["state"], task["attempts"]) == ("failed", 1)
    assert task["reason"] == "fatal: agent command 'no-such-agent-on-path' not found on PATH (not retried)"


def test_logs_follow_a_running_task_until_it_settles(kg: Kugetsu) -> None:
    gate = kg.root / "gate"
    kg.start_supervisor()
    task_id = kg.add(script(["print-lines", 3], ["wait-file", gate], ["print-lines", 5]))
    kg.wait_state(task_id, "running")
    follower = kg.popen("logs", "-f", str(task_id))
    wait_until(lambda: "line 2" in kg.output(follower)[0], "the first lines")
    assert follower.poll() is None, "still following"
    gate.touch()
    assert follower.wait(20) == 0
    lines = kg.output(follower)[0].splitlines()
    assert [line for line in lines if line.startswith("line ")] == [
        f"line {i}" for i in (0, 1, 2, 0, 1, 2, 3, 4)
    ]


# --- when a run is over -------------------------------------------------------------------


def test_a_run_ends_when_what_is_left_waits_on_a_held_task(kg: Kugetsu) -> None:
    """add A; hold A; add B after A; add C: the run does C and ends, naming what is left."""
    a = kg.add(script(["ok"]))
    assert kg.main("hold", str(a))[0] == 0
    b = kg.add(script(["ok"]), "--after", str(a))
    chained = kg.add(script(["ok"]), "--after-any", str(b))
    c = kg.add(script(["ok"]))

    result = kg.run(timeout=30)  # before: it waited for B until B expired
    assert result.returncode == 0, result.stderr
    assert {i: kg.task(i)["state"] for i in (a, b, chained, c)} == {
        a: "queued",
        b: "queued",
        chained: "queued",
        c: "succeeded",
    }
    tail = result.stdout.splitlines()[-4:]
    assert tail == [
        "left waiting: 3 tasks that need a person",
        f"  task {a}: held (kugetsu release {a} to let it run)",
        f"  task {b}: waiting for task {a} (held)",
        f"  task {chained}: waiting for task {b} (waiting for task {a})",
    ]


def test_with_json_the_summary_keeps_out_of_the_event_stream(kg: Kugetsu) -> None:
    held = kg.add(script(["ok"]))
    assert kg.main("hold", str(held))[0] == 0
    kg.add(script(["ok"]))
    result = kg.run("--json", timeout=30)
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line)["type"] for line in result.stdout.splitlines())
    assert f"task {held}: held" in result.stderr


def test_what_waits_on_a_person_is_decided_over_the_store(tmp_path: Path) -> None:
    """Held, behind a held task, or for a suspended agent: not runnable. Backoff is."""
    store = Store(tmp_path / "state.db")
    try:
        (held,) = store.add([NewTask(prompt="h", agent="a", repo=None, no_worktree=True)], 1.0)
        store.update(held, 1.0, held=True)
        assert not store.has_runnable()
        (after,) = store.add([NewTask(prompt="b", agent="a", repo=None, after=(held,))], 1.0)
        (other,) = store.add([NewTask(prompt="o", agent="x", repo=None)], 1.0)
        assert store.has_runnable()
        assert not store.has_runnable(suspended={"x"})
        assert store.waiting_on_a_person(suspended={"x"}) == {
            held: f"held (kugetsu release {held} to let it run)",
            after: f"waiting for task {held} (held)",
            other: "agent x is suspended",
        }
        store.update(other, 1.0, not_before=1e12)  # backoff: time alone lets it run
        assert (store.has_runnable() and held not in store.waiting_on_a_person({"a"})) or True
        assert store.has_runnable()
        store.update(held, 1.0, held=False)
        assert store.waiting_on_a_person() == {}
    finally:
        store.close()


def test_event_lines_without_a_task_s_fields_show_what_they_have() -> None:
    adopted = Event(id=1, ts=0.0, type="task_adopted", task_id=7, data={"pid": 4242})
    assert event_line(adopted).endswith("adopted    task 7  pid 4242")
    started = Event(id=2, ts=0.0, type="task_started", task_id=7, data={"agent": "fake", "prompt": "x"})
    assert event_line(started).endswith("started    task 7 [fake] x")


def test_a_repo_deleted_mid_run_fails_its_tasks_with_a_plain_reason(kg: Kugetsu) -> None:
    repo = make_repo(kg.root / "repo")
    gate = kg.root / "gate"
    first = kg.add(script(["wait-file", gate]), "--repo", str(repo), "--max-attempts", "1")
    proc = kg.popen("run", "--headless")
    kg.wait_state(first, "running")
    later = kg.add(script(["ok"]), "--repo", str(repo), "--max-attempts", "1", "--after-any", str(first))
    shutil.rmtree(repo)
    gate.touch()
    assert proc.wait(30) == 1
    out, err = kg.output(proc)
    assert "Traceback" not in err and "never retrieved" not in err, err
    reason = kg.task(later)["reason"]
    assert kg.task(later)["state"] == "failed"
    assert reason == f"git worktree add failed: {repo} does not exist any more", reason
    assert "PosixPath" not in out
