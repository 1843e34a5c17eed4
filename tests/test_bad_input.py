"""Every kind of bad input: one line on stderr naming what was wrong and what was expected,
exit code 2, no traceback, nothing on stdout, and the queue exactly as it was."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.harness import Kugetsu


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expected: str  # a fragment of the one error line
    config: str | None = None  # config.toml text to use instead of the good one
    files: dict[str, str] = field(default_factory=dict)  # written under the work dir first
    stdin: str | None = None
    names_config: bool = False  # the message must name the config file


def jl(*objects: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


GOOD = {"prompt": "fine", "no_worktree": True}
HUGE = "99999999999999999999"  # past SQLite's 64-bit INTEGER
GHOST = '[agents.ghost]\ncommand = ["kugetsu-no-such-program", "{prompt}"]\n'

CASES = [
    # config.toml
    Case("config-not-toml", ("add", "--no-worktree", "x"), "not valid TOML", "cap = [\n", names_config=True),
    Case("config-not-utf8", ("cap", "4"), "not UTF-8", "cap = '\xff'", names_config=True),
    Case(
        "config-unknown-key",
        ("add", "--no-worktree", "x"),
        "unknown key [queue] retry (expected one of:",
        '[queue]\nretry = "1s"\n',
        names_config=True,
    ),
    Case("config-unknown-top-key", ("cap", "4"), "unknown key colour", 'colour = "red"\n', names_config=True),
    Case(
        "config-hook-unknown-event",
        ("cap", "4"),
        "[[hooks]] #1 on: unknown event 'task_complete' (expected one of:",
        '[[hooks]]\non = ["task_complete"]\ncommand = ["cat"]\n',
        names_config=True,
    ),
    Case(
        "config-hook-no-command",
        ("cap", "4"),
        "[[hooks]] #1 command: missing",
        '[[hooks]]\non = ["task_error"]\n',
        names_config=True,
    ),
    Case(
        "config-bad-prompt-via",
        ("cap", "4"),
        '[agents.claude] prompt_via: expected "argv", "stdin" or "file", got \'pipe\'',
        '[agents.claude]\nprompt_via = "pipe"\n',
        names_config=True,
    ),
    Case(
        "config-wrong-type",
        ("add", "--no-worktree", "x"),
        "[capacity] cap: expected a whole number from 1 to 1024, got 'three'",
        '[capacity]\ncap = "three"\n',
        names_config=True,
    ),
    Case(
        "config-section-not-a-table",
        ("cap", "4"),
        "[queue]: expected a table",
        "queue = 3\n",
        names_config=True,
    ),
    Case(
        "config-command-a-string",
        ("cap", "4"),
        "[agents.x] command: expected a non-empty list of strings",
        '[agents.x]\ncommand = "opencode run {prompt}"\n',
        names_config=True,
    ),
    Case(
        "config-bad-duration",
        ("add", "--no-worktree", "x"),
        '[queue] retry_backoff: expected a duration like "90s"',
        '[queue]\nretry_backoff = "soon"\n',
        names_config=True,
    ),
    Case(
        "config-unknown-default-agent",
        ("cap", "4"),
        "default_agent: unknown agent 'nope' (expected one of:",
        'default_agent = "nope"\n',
        names_config=True,
    ),
    Case(
        "config-bad-for-run",
        ("run", "--headless"),
        "[queue] max_attempts: expected a whole number from 1 to 1000, got 0",
        "[queue]\nmax_attempts = 0\n",
        names_config=True,
    ),
    # config.toml: every number and duration has bounds (past them SQLite or a timer would fail)
    *(
        Case(f"config-too-big-{name}", ("run", "--headless"), expected, config, names_config=True)
        for name, config, expected in (
            (
                "cap",
                f"[capacity]\ncap = {HUGE}\n",
                f"[capacity] cap: expected a whole number from 1 to 1024, got {HUGE}",
            ),
            (
                "max",
                "[capacity]\nmax = 1025\n",
                "[capacity] max: expected a whole number from 1 to 1024, got 1025",
            ),
            (
                "attempts",
                "[queue]\nmax_attempts = 1001\n",
                "[queue] max_attempts: expected a whole number from 1 to 1000",
            ),
            ("expire", '[queue]\nexpire_after = "366d"\n', "[queue] expire_after: expected a duration like"),
            ("grace", f"[queue]\nkill_grace = {HUGE}\n", "(at most 365d), got 99999999999999999999"),
            (
                "log",
                '[queue]\nmax_log = "2PiB"\n',
                '[queue] max_log: expected a size like "512MiB" or "2GiB" (at most 1PiB)',
            ),
            (
                "agent-live",
                f'[agents.x]\ncommand = ["x"]\nmax_live = {HUGE}\n',
                "[agents.x] max_live: expected a whole number from 1",
            ),
            (
                "cores",
                '[agents.x]\ncommand = ["x"]\nest_cpu = 1e9\n',
                "[agents.x] est_cpu: expected a number of cores",
            ),
            (
                "cooldown",
                f'[agents.x]\ncommand = ["x"]\ncooldown = {HUGE}\n',
                "[agents.x] cooldown: expected a duration",
            ),
            (
                "repo-live",
                f'[repos."/"]\nmax_live = {HUGE}\n',
                '[repos."/"] max_live: expected a whole number from 1 to 1024',
            ),
            (
                "hook",
                f'[[hooks]]\non = ["task_error"]\ncommand = ["cat"]\ntimeout = {HUGE}\n',
                "[[hooks]] #1 timeout",
            ),
        )
    ),
    # add
    Case("unknown-agent", ("add", "--no-worktree", "--agent", "nope", "x"), "unknown agent 'nope'"),
    Case(
        "agent-program-not-on-path",
        ("add", "--no-worktree", "--agent", "ghost", "x"),
        "agent 'ghost': its program 'kugetsu-no-such-program' is not found on PATH; set [agents.ghost] "
        "command, or add with --force to queue it anyway",
        GHOST,
    ),
    Case(
        "agent-program-not-a-file",
        ("add", "--no-worktree", "--agent", "ghost", "x"),
        "agent 'ghost': its program '/no/such/agent' is not an executable file",
        '[agents.ghost]\ncommand = ["/no/such/agent", "{prompt}"]\n',
    ),
    Case(
        "json-agent-program-not-on-path",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: agent 'ghost': its program 'kugetsu-no-such-program' is not found on PATH",
        'default_agent = "ok"\n[agents.ok]\ncommand = ["true", "{prompt}"]\n' + GHOST,
        files={"t.jsonl": jl(GOOD, {**GOOD, "agent": "ghost"})},
    ),
    Case("missing-repo", ("add", "--repo", "/no/such/repo", "x"), "/no/such/repo does not exist"),
    Case(
        "missing-repo-no-worktree",
        ("add", "--no-worktree", "--repo", "/no/such/dir", "x"),
        "/no/such/dir does not exist",
    ),
    Case("not-a-git-repo", ("add", "--repo", ".", "x"), "is not inside a git repository"),
    Case("not-a-git-repo-cwd", ("add", "x"), "or --no-worktree"),
    Case("empty-prompt", ("add", "--no-worktree", ""), "empty prompt"),
    Case("blank-prompt", ("add", "--no-worktree", "  \n\t "), "empty prompt"),
    Case("no-prompt", ("add", "--no-worktree"), "empty prompt"),
    Case("empty-prompt-stdin", ("add", "--no-worktree", "-"), "empty prompt", stdin="\n"),
    Case("bad-duration", ("add", "--no-worktree", "--timeout", "5x", "x"), 'expected a duration like "90s"'),
    Case("zero-timeout", ("add", "--no-worktree", "--timeout", "0s", "x"), "timeout: expected a duration"),
    Case("bad-priority", ("add", "--no-worktree", "--priority", "high", "x"), "expected a whole number"),
    Case(
        "zero-attempts",
        ("add", "--no-worktree", "--max-attempts", "0", "x"),
        "expected a whole number from 1 to 1000",
    ),
    Case("prompt-and-file", ("add", "x", "--from-file", "t.jsonl"), "either a prompt or --from-file"),
    Case(
        "agent-program-is-the-prompt",
        ("add", "--no-worktree", "--agent", "x", "touch owned"),
        "[agents.x] command: its first element '{prompt}' would run the prompt as a program",
        '[agents.x]\ncommand = ["{prompt}", "-v"]\n',
        names_config=True,
    ),
    Case("key-not-utf8", ("add", "--no-worktree", "--key", "\udcff", "x"), "key: byte 0xff at character 0"),
    Case(
        "base-not-utf8", ("add", "--no-worktree", "--base", "b\udcfe", "x"), "base: byte 0xfe at character 1"
    ),
    # add --from-file: a bad line rejects the whole file
    Case(
        "json-malformed-line",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: not valid JSON",
        files={"t.jsonl": jl(GOOD, '{"prompt": "x"', GOOD)},
    ),
    Case(
        "json-malformed-line-stdin",
        ("add", "--from-file", "-"),
        "-:3: not valid JSON",
        stdin=jl(GOOD, GOOD, "prompt: x"),
    ),
    Case(
        "json-not-an-object",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:1: expected a JSON object",
        files={"t.jsonl": jl(["x"])},
    ),
    Case(
        "json-unknown-key",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: unknown key 'colour'",
        files={"t.jsonl": jl(GOOD, {**GOOD, "colour": "red"})},
    ),
    Case(
        "json-wrong-type",
        ("add", "--from-file", "t.jsonl"),
        "priority: expected a whole number from -1000000 to 1000000, got 'high'",
        files={"t.jsonl": jl(GOOD, {**GOOD, "priority": "high"})},
    ),
    Case(
        "json-zero-attempts",
        ("add", "--from-file", "t.jsonl"),
        "max_attempts: expected a whole number from 1 to 1000, got 0",
        files={"t.jsonl": jl(GOOD, {**GOOD, "max_attempts": 0})},
    ),
    Case(
        "json-huge-priority",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: priority: expected a whole number from -1000000 to 1000000, got 1000000000000000000000",
        files={"t.jsonl": jl(GOOD, {**GOOD, "priority": 10**21})},
    ),
    Case(
        "json-huge-attempts",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: max_attempts: expected a whole number from 1 to 1000",
        files={"t.jsonl": jl(GOOD, {**GOOD, "max_attempts": 10**21})},
    ),
    Case(
        "json-huge-timeout",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: timeout: expected a duration like",
        files={"t.jsonl": jl(GOOD, {**GOOD, "timeout": "99999999999999d"})},
    ),
    Case(
        "json-bad-duration",
        ("add", "--from-file", "t.jsonl"),
        "timeout: expected a duration like",
        files={"t.jsonl": jl(GOOD, {**GOOD, "timeout": "soon"})},
    ),
    Case(
        "json-no-worktree-not-bool",
        ("add", "--from-file", "t.jsonl"),
        "no_worktree: expected true or false",
        files={"t.jsonl": jl({"prompt": "x", "no_worktree": "yes"})},
    ),
    Case(
        "json-empty-prompt",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: empty prompt",
        files={"t.jsonl": jl(GOOD, {**GOOD, "prompt": " "})},
    ),
    Case(
        "json-unknown-agent",
        ("add", "--from-file", "t.jsonl"),
        "unknown agent 'nope'",
        files={"t.jsonl": jl(GOOD, {**GOOD, "agent": "nope"})},
    ),
    Case(
        "json-missing-repo",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: repo /no/such/repo does not exist",
        files={"t.jsonl": jl(GOOD, {"prompt": "x", "repo": "/no/such/repo"})},
    ),
    Case(
        "json-not-a-git-repo",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: ",
        files={"t.jsonl": jl(GOOD, {"prompt": "x", "repo": "."})},
    ),
    Case(
        "json-lone-surrogate",
        ("add", "--from-file", "t.jsonl"),
        "t.jsonl:2: prompt: a lone surrogate U+D800 at character 1 is not text",
        files={"t.jsonl": jl(GOOD, '{"prompt": "x\\ud800", "no_worktree": true}')},
    ),
    Case("json-no-such-file", ("add", "--from-file", "nope.jsonl"), "nope.jsonl: no such file"),
    Case("json-no-tasks", ("add", "--from-file", "t.jsonl"), "no tasks in it", files={"t.jsonl": "\n\n"}),
    # task ids
    Case("unknown-id-cancel", ("cancel", "999"), "no task 999 (expected an id listed by"),
    Case("unknown-id-after-a-good-one", ("cancel", "1", "999"), "no task 999"),
    Case("unknown-id-logs", ("logs", "999"), "no task 999"),
    Case("unknown-id-requeue", ("requeue", "999"), "no task 999"),
    Case("not-an-id", ("pause", "abc"), "expected a task id (a whole number >= 1), got 'abc'"),
    Case("zero-id", ("hold", "0"), "expected a task id"),
    Case("huge-id", ("cancel", "9" * 30), "expected a task id (a whole number >= 1), got '999"),
    Case("after-huge-id", ("add", "--no-worktree", "--after", "9" * 30, "x"), "after: expected task ids"),
    Case(
        "after-not-ascii-digit",
        ("add", "--no-worktree", "--after", "\u00b2", "x"),
        "after: expected task ids",
    ),
    Case("pause-a-queued-task", ("pause", "1"), "task 1 is queued; only running tasks can be paused"),
    Case("resume-a-queued-task", ("resume", "1"), "only paused tasks can be resumed"),
    Case("release-a-task-not-held", ("release", "1"), "can be released"),
    Case("hold-a-held-task", ("hold", "2"), "task 2 is queued, held"),
    Case(
        "requeue-a-queued-task", ("requeue", "1"), "only cancelled or expired or failed tasks can be requeued"
    ),
    Case("cancel-a-finished-task", ("cancel", "3"), "task 3 is cancelled"),
    # other options
    Case("cap-zero", ("cap", "0"), "expected a whole number from 1 to 1024, got '0'"),
    Case("cap-not-a-number", ("cap", "many"), "expected a whole number from 1 to 1024"),
    Case("cap-too-big", ("cap", HUGE), f"expected a whole number from 1 to 1024, got '{HUGE}'"),
    Case("priority-too-big", ("add", "--no-worktree", "--priority", HUGE, "x"), "from -1000000 to 1000000"),
    Case("priority-too-small", ("add", "--no-worktree", "--priority", "-" + HUGE, "x"), "from -1000000"),
    Case("attempts-too-big", ("add", "--no-worktree", "--max-attempts", HUGE, "x"), "from 1 to 1000, got"),
    Case("timeout-too-long", ("add", "--no-worktree", "--timeout", "366d", "x"), "(above 0, at most 365d)"),
    Case("id-too-big", ("cancel", HUGE), f"expected a task id (a whole number >= 1), got '{HUGE}'"),
    Case("since-too-big", ("events", "--since", HUGE), "--since: expected a whole number from 0 to"),
    Case("unknown-command", ("frobnicate",), "invalid choice: 'frobnicate'"),
    Case("unknown-option", ("status", "--colour"), "unrecognized arguments: --colour"),
]


@pytest.fixture
def populated(kg: Kugetsu) -> Kugetsu:
    """A queue with something in it: 1 queued, 2 held, 3 cancelled."""
    kg.add("one")
    assert kg.main("hold", str(kg.add("two")))[0] == 0
    assert kg.main("cancel", str(kg.add("three")))[0] == 0
    return kg


def _store_state(kg: Kugetsu) -> tuple[object, object]:
    return kg.status()["tasks"], kg.events()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(populated: Kugetsu, case: Case) -> None:
    kg = populated
    before = _store_state(kg)
    good_config = kg.config_path.read_bytes()
    if case.config is not None:
        kg.config_path.write_bytes(case.config.encode("latin-1"))
    for name, text in case.files.items():
        (kg.work / name).write_text(text)

    result = kg.cli(*case.argv, input=case.stdin)

    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    assert case.expected in lines[0]
    if case.names_config:
        assert str(kg.config_path) in lines[0]

    kg.config_path.write_bytes(good_config)
    assert _store_state(kg) == before, "the queue is exactly as it was"


def test_a_home_others_can_write_is_refused(kg: Kugetsu) -> None:
    kg.add("one")
    before = kg.status()["tasks"]
    kg.home.chmod(0o777)
    try:
        result = kg.cli("add", "--no-worktree", "two")
    finally:
        kg.home.chmod(0o700)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "writable by others" in result.stderr
    assert kg.status()["tasks"] == before


def test_a_corrupt_database_is_reported_in_one_line(kg: Kugetsu) -> None:
    (kg.home / "state.db").write_bytes(b"this is not a database" * 100)
    result = kg.cli("status")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "state database is corrupt" in result.stderr
    # Moved aside, never deleted or silently replaced.
    (moved,) = kg.home.glob("state.db.corrupt-*")
    assert moved.read_bytes() == b"this is not a database" * 100
    assert not (kg.home / "state.db").exists()


def test_the_last_good_line_count_is_all_or_nothing(kg: Kugetsu, tmp_path: Path) -> None:
    """The good file next to the bad ones above is accepted whole: the test can tell."""
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(jl(GOOD, {**GOOD, "priority": 2}, {**GOOD, "max_attempts": 5, "timeout": "90s"}))
    result = kg.cli("add", "--from-file", str(tasks))
    assert result.returncode == 0, result.stderr
    ids = [int(i) for i in result.stdout.split()]
    assert len(ids) == 3
    added = kg.tasks()
    assert [added[i]["priority"] for i in ids] == [0, 2, 0]
    assert added[ids[2]]["max_attempts"] == 5 and added[ids[2]]["timeout"] == 90.0
