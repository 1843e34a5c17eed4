"""`kugetsu mcp` driven by the MCP SDK's own stdio client: a real server subprocess on a real
home, real supervisors and fake agents; lineage from a fake agent that runs `kugetsu add`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from kugetsu_tui.engine import markers
from tests.helpers.harness import PY, Kugetsu, script, wait_until

TOOL_NAMES = {"add_task", "get_task", "wait_tasks", "cancel_task", "task_log", "queue_status"}


def inside(kg: Kugetsu, task_id: int) -> dict[str, str]:
    """The environment an agent of task_id passes on to what it starts (its run marker)."""
    return {markers.MARKER: markers.run_marker(kg.home, task_id, 1, None)}


@asynccontextmanager
async def planner(kg: Kugetsu, **env: str) -> AsyncIterator[ClientSession]:
    """A client session with a fresh `kugetsu mcp` (extra environment: as inside a task)."""
    params = StdioServerParameters(
        command=PY, args=["-m", "kugetsu_tui", "mcp"], env={**kg.env, **env}, cwd=str(kg.work)
    )
    with open(kg.root / "mcp.err", "a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
    assert "Traceback" not in (kg.root / "mcp.err").read_text()


def _defaults(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    if tool == "add_task" and "repo" not in args:
        return {"no_worktree": True, **args}
    return args


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """A tool's answer, which must not be an error (tasks run without a worktree unless a
    repo is given)."""
    result = await session.call_tool(tool, _defaults(tool, args))
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, text
    answer: dict[str, Any] = json.loads(text)
    assert answer == result.structured_content
    return answer


async def fails(session: ClientSession, tool: str, **args: Any) -> str:
    """A tool's error message, which must be one line."""
    result = await session.call_tool(tool, _defaults(tool, args))
    text: str = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error, text
    assert "\n" not in text and "Traceback" not in text
    return text


def hold(kg: Kugetsu, name: str) -> str:
    """A fake agent prompt that runs until the file `name` exists."""
    return script(["wait-file", kg.root / name])


async def test_tools_are_listed_with_schemas_and_descriptions(kg: Kugetsu) -> None:
    async with planner(kg) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.description and len(tool.description) > 100, tool.name
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    add = tools["add_task"].input_schema
    assert add["required"] == ["prompt"]
    assert set(add["properties"]) == {
        "prompt",
        "repo",
        "agent",
        "priority",
        "after",
        "key",
        "timeout",
        "no_worktree",
    }
    assert add["properties"]["no_worktree"]["type"] == "boolean"
    assert add["properties"]["priority"]["type"] == "integer"
    assert add["properties"]["after"]["items"]["type"] == "integer"
    wait = tools["wait_tasks"].input_schema
    assert wait["required"] == ["ids"] and wait["properties"]["timeout_s"]["type"] == "number"
    assert tools["get_task"].input_schema["required"] == ["id"]
    assert tools["task_log"].input_schema["properties"]["lines"]["maximum"] == 2000
    assert tools["queue_status"].input_schema["properties"] == {}


async def test_add_beyond_the_cap_queues_and_says_where(kg: Kugetsu, repo: Path) -> None:
    kg.write_config(capacity={"cap": 2})
    kg.start_supervisor()
    async with planner(kg) as session:
        first = await call(session, "add_task", prompt=hold(kg, "go"), repo=str(repo))
        assert first["cap"] == 2 and first["state"] in ("queued", "starting", "running")
        kg.wait_state(first["id"], "running")
        second = await call(session, "add_task", prompt=hold(kg, "go"))
        assert second["live"] in (1, 2)  # 2 once the supervisor admitted it
        kg.wait_state(second["id"], "running")
        third = await call(session, "add_task", prompt=hold(kg, "go"), priority=5)
        fourth = await call(session, "add_task", prompt=script(["ok"]))
        status = await call(session, "queue_status")
    assert (third["state"], third["position"], third["live"], third["cap"], third["queued"]) == (
        "queued",
        1,
        2,
        2,
        1,
    )
    assert third["wait_reason"] == "cap full (2/2 live)"
    assert (fourth["position"], fourth["queued"]) == (2, 2)
    assert status["live"] == 2 and status["counts"]["queued"] == 2 and status["on_full"] == "queue"
    assert kg.task(first["id"])["worktree"] == str(kg.home / "worktrees" / str(first["id"]))
    assert kg.task(second["id"])["repo"] == str(kg.work)  # the server's working directory
    (kg.root / "go").touch()
    kg.wait_state(fourth["id"], "succeeded")


async def test_reject_mode_fails_closed_at_the_cap(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 2}, mcp={"on_full": "reject"})
    kg.start_supervisor()
    async with planner(kg) as session:
        ids = []
        for _ in range(2):  # below the cap: taken, and started
            added = await call(session, "add_task", prompt=hold(kg, "go"))
            kg.wait_state(added["id"], "running")
            ids.append(added["id"])
        kg.add(script(["ok"]), "--after", str(ids[0]))  # one queued, from the CLI (never refused)
        message = await fails(session, "add_task", prompt=script(["ok"]))
        assert message == "max-live-workers: 2/2 live, 1 queued"
        assert kg.status()["counts"]["queued"] == 1  # nothing queued by the refused add
        (kg.root / "go").touch()
        kg.wait_state(ids[0], "succeeded")
        kg.wait_state(ids[1], "succeeded")
        again = await call(session, "add_task", prompt=script(["ok"]))  # a slot is free again
    kg.wait_state(again["id"], "succeeded")


async def test_max_queued_bounds_every_face_even_under_concurrent_adds(kg: Kugetsu) -> None:
    kg.write_config(queue={"max_queued": 4})
    for _ in range(2):
        kg.add(script(["ok"]))
    async with planner(kg) as session:
        answers = await asyncio.gather(
            *(session.call_tool("add_task", {"prompt": f"say {n}", "no_worktree": True}) for n in range(10))
        )
        refused = [a.content[0].text for a in answers if a.is_error]  # type: ignore[union-attr]
        message = await fails(session, "add_task", prompt="ok", no_worktree=True)
    assert len(refused) == 8  # 2 queued before + 2 of these = the bound, not one more
    assert message.startswith("queue-full: 4 tasks queued, the most [queue] max_queued allows")
    assert set(refused) == {message}
    cli = kg.cli("add", "--no-worktree", "--", "ok")
    assert cli.returncode == 3, cli.stderr
    assert cli.stderr == f"kugetsu: error: {message}\n" and cli.stdout == ""
    assert kg.status()["counts"]["queued"] == 4


async def test_ten_concurrent_calls_each_get_their_answer(kg: Kugetsu) -> None:
    async with planner(kg) as session:
        added = await asyncio.gather(*(call(session, "add_task", prompt=f"say {n}") for n in range(10)))
        ids = [a["id"] for a in added]
        reads = await asyncio.gather(
            *(call(session, "get_task", id=i) for i in ids),
            call(session, "queue_status"),
            call(session, "wait_tasks", ids=ids[:3], timeout_s=0.2),
        )
    assert len(set(ids)) == 10
    assert [r["prompt"] for r in reads[:10]] == [f"say {n}" for n in range(10)]
    assert reads[10]["counts"]["queued"] == 10
    assert reads[11]["timed_out"] is True
    assert sorted(t["id"] for t in kg.status()["tasks"]) == sorted(ids)


async def test_wait_tasks_on_success_failure_and_timeout(kg: Kugetsu) -> None:
    kg.write_config(queue={"max_attempts": 1})
    kg.start_supervisor()
    async with planner(kg) as session:
        good = await call(session, "add_task", prompt=script(["say", "all done: 3 files"], ["ok"]))
        bad = await call(session, "add_task", prompt=script(["say", "cannot build"], ["exit", 4]))
        slow = await call(session, "add_task", prompt=hold(kg, "go"))
        settled = await call(session, "wait_tasks", ids=[good["id"], bad["id"]], timeout_s=30)
        began = time.monotonic()
        waited = await call(session, "wait_tasks", ids=[slow["id"], good["id"]], timeout_s=0.5)
        took = time.monotonic() - began
        log = await call(session, "task_log", id=bad["id"], lines=5)
        got = await call(session, "get_task", id=good["id"])
    assert settled["done"] is True and settled["timed_out"] is False
    by_id = {t["id"]: t for t in settled["tasks"]}
    assert by_id[good["id"]]["state"] == "succeeded" and by_id[good["id"]]["exit_code"] == 0
    assert by_id[good["id"]]["result"] == "all done: 3 files"
    assert by_id[bad["id"]]["state"] == "failed" and by_id[bad["id"]]["exit_code"] == 4
    assert by_id[bad["id"]]["result"] == "cannot build"
    assert waited["done"] is False and waited["timed_out"] is True
    assert [t["state"] for t in waited["tasks"]] in (["running", "succeeded"], ["starting", "succeeded"])
    assert waited["tasks"][0]["result"] is None
    assert 0.4 < took < 5
    assert log["lines"][1:2] == ["cannot build"] and log["state"] == "failed"
    assert log["lines"][0].startswith("── attempt 1 · fake ") and log["lines"][2].startswith(
        "── exit code 4 · "
    )
    assert got["result"] == "all done: 3 files" and got["children"] == [] and got["parent"] is None
    (kg.root / "go").touch()


async def test_a_task_added_from_inside_a_task_records_its_parent(kg: Kugetsu) -> None:
    ids_file = kg.root / "child-ids"
    parent = kg.add(
        script(["add-task", kg.home, ids_file, script(["say", "child work"])], ["wait-file", kg.root / "go"])
    )
    other = kg.add(script(["ok"]))
    kg.start_supervisor()
    child = int(wait_until(lambda: ids_file.exists() and ids_file.read_text().strip(), "the child's id"))
    kg.wait_state(child, "succeeded")
    tasks = kg.tasks()
    assert tasks[child]["parent"] == parent and tasks[parent]["children"] == [child]
    assert tasks[other]["parent"] is None and tasks[other]["children"] == []
    assert next(e for e in kg.events(child) if e["type"] == "task_queued")["parent"] == parent
    tree = kg.cli("status", "--tree").stdout.splitlines()
    parent_line = next(n for n, line in enumerate(tree) if line.lstrip().startswith(f"{parent} "))
    assert tree[parent_line + 1].startswith(f"  └ {child} ") and "say" in tree[parent_line + 1]
    (kg.root / "go").touch()
    kg.wait_state(parent, "succeeded")


def test_a_task_id_from_another_home_is_no_parent(kg: Kugetsu, tmp_path: Path) -> None:
    first = kg.add(script(["ok"]))
    kg.env[markers.MARKER] = markers.run_marker(tmp_path / "other", first, 1, None)
    done = kg.cli("add", "--no-worktree", "--", "ok")
    assert done.returncode == 0, done.stderr
    assert kg.task(int(done.stdout))["parent"] is None
    kg.env[markers.MARKER] = markers.run_marker(kg.home, first, 1, None)
    done = kg.cli("add", "--no-worktree", "--", "ok")
    assert kg.task(int(done.stdout))["parent"] == first


async def test_wait_tasks_reports_a_parent_waiting_on_children_it_blocks(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 1})
    parent = kg.add(hold(kg, "go"))
    kg.start_supervisor()
    kg.wait_state(parent, "running")
    async with planner(kg, **inside(kg, parent)) as session:  # a planner inside the task
        child = await call(session, "add_task", prompt=script(["say", "done"]))
        assert child["parent"] == parent and child["wait_reason"] == "cap full (1/1 live)"
        began = time.monotonic()
        stuck = await call(session, "wait_tasks", ids=[child["id"]], timeout_s=60)
        assert time.monotonic() - began < 10  # at once, not after the timeout
        assert stuck["done"] is False and stuck["timed_out"] is False
        assert stuck["deadlock"].startswith(f"deadlock: all 1 slots are held by tasks {parent}")
        assert stuck["warning"].startswith(f"your task {parent} holds one of the 1 slots")
        (kg.root / "go").touch()  # the parent ends: its child gets the slot
        kg.wait_state(parent, "succeeded")
        settled = await call(session, "wait_tasks", ids=[child["id"]], timeout_s=30)
    assert settled["done"] is True and settled["deadlock"] is None
    assert settled["tasks"][0]["state"] == "succeeded"


async def test_cancel_task_and_its_mistakes(kg: Kugetsu) -> None:
    async with planner(kg) as session:
        added = await call(session, "add_task", prompt="ok")
        cancelled = await call(session, "cancel_task", id=added["id"])
        again = await fails(session, "cancel_task", id=added["id"])
    assert cancelled == {
        "id": added["id"],
        "message": "cancelled",
        "state": "cancelled",
        "children_cancelled": [],
    }
    assert again.startswith(f"task {added['id']} is cancelled; only ") and again.endswith(" can be cancelled")


async def test_cancelling_a_parent_can_take_its_queued_children_along(kg: Kugetsu) -> None:
    parent = kg.add(script(["ok"]))
    async with planner(kg, **inside(kg, parent)) as session:
        kids = [(await call(session, "add_task", prompt=f"say {n}"))["id"] for n in range(2)]
    async with planner(kg, **inside(kg, kids[0])) as session:
        grandchild = (await call(session, "add_task", prompt="say deeper"))["id"]
    kg.main("hold", str(kids[1]))
    unrelated = kg.add(script(["ok"]))
    async with planner(kg) as session:
        done = await call(session, "cancel_task", id=parent, children=True)
    assert done["state"] == "cancelled"
    assert sorted(done["children_cancelled"]) == sorted([*kids, grandchild])
    states = {i: t["state"] for i, t in kg.tasks().items()}
    assert [states[i] for i in (parent, *kids, grandchild)] == ["cancelled"] * 4
    assert states[unrelated] == "queued"


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("add_task", {}, "empty prompt (expected the task's text"),
    ("add_task", {"prompt": 5}, "empty prompt"),
    ("add_task", {"prompt": "  "}, "empty prompt"),
    ("add_task", {"prompt": "ok", "repo": 5}, "repo: expected a path, got 5"),
    ("add_task", {"prompt": "ok", "repo": "/nonexistent/x"}, "/nonexistent/x"),
    ("add_task", {"prompt": "ok", "agent": 7}, "agent: expected an agent name, got 7"),
    ("add_task", {"prompt": "ok", "agent": "nope"}, "unknown agent 'nope' (expected one of:"),
    (
        "add_task",
        {"prompt": "ok", "priority": "high"},
        "priority: expected a whole number from -1000000 to 1000000, got 'high'",
    ),
    (
        "add_task",
        {"prompt": "ok", "priority": 1.5},
        "priority: expected a whole number from -1000000 to 1000000, got 1.5",
    ),
    (
        "add_task",
        {"prompt": "ok", "priority": True},
        "priority: expected a whole number from -1000000 to 1000000, got True",
    ),
    ("add_task", {"prompt": "ok", "after": "x"}, "after: expected task ids like [3, 4], got 'x'"),
    ("add_task", {"prompt": "ok", "after": [0]}, "after: expected task ids (whole numbers >= 1), got 0"),
    ("add_task", {"prompt": "ok", "after": [999]}, "after: no task 999"),
    ("add_task", {"prompt": "ok", "after": {"a": 1}}, "after: expected task ids like [3, 4]"),
    ("add_task", {"prompt": "ok", "key": ""}, "key: expected a non-empty string, got ''"),
    ("add_task", {"prompt": "ok", "key": 5}, "key: expected a non-empty string, got 5"),
    ("add_task", {"prompt": "ok", "timeout": "soon"}, 'timeout: expected a duration like "90s"'),
    ("add_task", {"prompt": "ok", "timeout": -1}, 'timeout: expected a duration like "90s"'),
    ("add_task", {"prompt": "ok", "timeout": [1]}, 'timeout: expected a duration like "90s"'),
    ("add_task", {"prompt": "ok", "no_worktree": "yes"}, "no_worktree: expected true or false, got 'yes'"),
    ("add_task", {"prompt": "ok", "colour": "red"}, "unknown argument 'colour' (expected: after, agent,"),
    ("get_task", {}, "id: expected a task id (a whole number >= 1), got None"),
    ("get_task", {"id": "seven"}, "id: expected a task id (a whole number >= 1), got 'seven'"),
    ("get_task", {"id": 0}, "id: expected a task id (a whole number >= 1), got 0"),
    ("get_task", {"id": -3}, "id: expected a task id (a whole number >= 1), got -3"),
    ("get_task", {"id": 2.5}, "id: expected a task id (a whole number >= 1), got 2.5"),
    ("get_task", {"id": [1]}, "id: expected a task id (a whole number >= 1), got [1]"),
    ("get_task", {"id": 10**30}, "id: expected a task id (a whole number >= 1), got 1000000"),
    ("get_task", {"id": 42}, "no task 42 (expected an id listed by `kugetsu status`)"),
    ("cancel_task", {"id": False}, "id: expected a task id (a whole number >= 1), got False"),
    ("cancel_task", {"id": 1, "children": "all"}, "children: expected true or false, got 'all'"),
    ("task_log", {"id": 42}, "no task 42"),
    ("task_log", {"id": 1, "lines": 0}, "lines: expected a whole number from 1 to 2000, got 0"),
    ("task_log", {"id": 1, "lines": "ten"}, "lines: expected a whole number from 1 to 2000, got 'ten'"),
    ("wait_tasks", {}, "ids: expected a list of 1 to 100 task ids like [3, 4], got None"),
    ("wait_tasks", {"ids": []}, "ids: expected a list of 1 to 100 task ids like [3, 4], got []"),
    ("wait_tasks", {"ids": "1"}, "ids: expected a list of 1 to 100 task ids like [3, 4], got '1'"),
    ("wait_tasks", {"ids": [1, "x"]}, "ids: expected a task id (a whole number >= 1), got 'x'"),
    ("wait_tasks", {"ids": [1, 42]}, "no task 42"),
    ("wait_tasks", {"ids": [1], "timeout_s": -1}, "timeout_s: expected a number from 0 to 3600, got -1"),
    (
        "wait_tasks",
        {"ids": [1], "timeout_s": "long"},
        "timeout_s: expected a number from 0 to 3600, got 'long'",
    ),
    ("wait_tasks", {"ids": [1], "timeout_s": 1e9}, "timeout_s: expected a number from 0 to 3600"),
    ("queue_status", {"verbose": True}, "unknown argument 'verbose' (expected: none)"),
]


async def test_bad_arguments_get_one_line_errors_and_change_nothing(kg: Kugetsu) -> None:
    existing = kg.add(script(["ok"]))
    before = kg.status()["counts"]
    async with planner(kg) as session:
        for tool, args, expected in BAD_CALLS:
            message = await fails(session, tool, **args)
            assert expected in message, (tool, args, message)
        unknown = await session.call_tool("no_such_tool", {})
        assert unknown.is_error
        still = await call(session, "get_task", id=existing)  # the server still serves
    assert still["state"] == "queued"
    assert kg.status()["counts"] == before


def test_the_server_exits_cleanly_when_stdin_closes(kg: Kugetsu) -> None:
    """Raw JSON-RPC lines, as any client may send them (a lone surrogate, which the SDK's
    client cannot even encode, and a line that is not JSON), then the end of stdin."""
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    ready = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    bad = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "add_task", "arguments": {"prompt": "a\ud800b", "no_worktree": True}},
    }
    proc = subprocess.Popen(
        [PY, "-m", "kugetsu_tui", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=kg.env,
        text=True,
    )
    kg.supervisors.append(proc)  # ended at teardown if it fails to end by itself
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    fine = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "queue_status"}}
    lines = [json.dumps(m) for m in (hello, ready, bad)] + ["not json {", json.dumps(fine)]
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.flush()
    replies: dict[int, Any] = {}
    while 3 not in replies:  # answered before the server reads the end of its input
        reply = json.loads(proc.stdout.readline())
        replies[reply["id"]] = reply
    proc.stdin.close()
    assert proc.wait(30) == 0
    assert "Traceback" not in proc.stderr.read()
    assert replies[1]["result"]["serverInfo"]["name"] == "kugetsu"
    assert replies[3]["result"]["structuredContent"]["counts"]["queued"] == 0
    assert 2 not in replies or "error" in replies[2] or replies[2]["result"]["isError"]
    assert kg.status()["counts"]["queued"] == 0


def test_add_does_not_load_the_mcp_sdk(kg: Kugetsu) -> None:
    code = (
        "import sys; from kugetsu_tui import cli; "
        f"code = cli.main(['--home', {str(kg.home)!r}, 'add', '--no-worktree', '--', 'ok']); "
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'anyio')))"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=kg.env, cwd=kg.work)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr


def test_a_database_from_before_lineage_gets_the_parent_column(kg: Kugetsu) -> None:
    first = kg.add(script(["ok"]))
    db = sqlite3.connect(kg.home / "state.db")
    db.execute("DROP INDEX tasks_by_parent")
    db.execute("ALTER TABLE tasks DROP COLUMN parent")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    assert kg.task(first)["parent"] is None  # opened, upgraded, read
    columns = [row[1] for row in sqlite3.connect(kg.home / "state.db").execute("PRAGMA table_info(tasks)")]
    assert "parent" in columns
    kg.env.update(inside(kg, first))
    done = kg.cli("add", "--no-worktree", "--", "ok")
    assert kg.task(int(done.stdout))["parent"] == first


@pytest.mark.parametrize("value", ["sometimes", 3])
def test_a_bad_on_full_is_a_config_error(kg: Kugetsu, value: object) -> None:
    kg.write_config(mcp={"on_full": value})
    code, _, err = kg.main("cap", "4")  # (reading commands run on the defaults, saying so)
    assert code == 2
    assert err.strip().endswith(f'[mcp] on_full: expected "queue" or "reject", got {value!r}')
