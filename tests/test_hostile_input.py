"""Prompts are data, and no input makes the CLI fall over.

A prompt reaches the agent byte-exact and is never read by a shell, whichever way it
goes: one argv element, stdin, or a file (`[agents.X] prompt_via`). What argv cannot
carry (a NUL byte, more than 128 KiB) is refused for argv agents with one clear line
and works through stdin or a file. Random command lines and random config files end
with exit 0 or 2, never a traceback, and leave the store as it was when they fail.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kugetsu_tui import cli
from tests.helpers.harness import PY, Kugetsu

MAX_ARG = 131072  # Linux MAX_ARG_STRLEN: one argv element, its NUL included

# Agents that write exactly what they were given to OUT/<task id>, as bytes (sh printf
# and cat do not decode anything). The argv one also counts its arguments: a prompt split
# in two would make it 3.
WRITE_ARGV = 'printf "%s" "$#" > "$2.argc"; printf "%s" "$1" > "$2"'
WRITE_STDIN = 'cat > "$1"'
WRITE_FILE = 'cat -- "$1" > "$2"'

PROMPTS = [
    b"; rm -rf canary",
    b"$(touch pwned) `touch pwned` | tee pwned && echo pwned > pwned & wait",
    b"line one\nline two\n\n\ttabbed 'single' \"double\" \\back\\slash *.py ~ $HOME\n",
    b"-rf --help",
    b"--version",
    b"%s %n %% \\x41 \\0",
    b"\xff\xfe not \xc3\x28 UTF-8 \xed\xa0\x80 at all \x80",
    "ünïcödé ✓ 日本語".encode(),
    b"placeholders stay put: {prompt} {task_id} {worktree}",
]
BIG = b"".join(b"%07d lorem ipsum $(x) `y` ; z\n" % i for i in range(1 << 15))  # ~1.1 MB
NUL = b"before\x00after"


def text(prompt: bytes) -> str:
    """The prompt as Python sees it on a command line (bytes that are not UTF-8 escaped)."""
    return prompt.decode("utf-8", "surrogateescape")


@contextlib.contextmanager
def stdin_bytes(data: bytes) -> Iterator[None]:
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(data))
    try:
        yield
    finally:
        sys.stdin = old


def run_cli(home: Path, argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """`kugetsu --home HOME ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with stdin_bytes(stdin), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: Any = cli.main(["--home", str(home), *argv])
        except SystemExit as stop:  # argparse: --help, --version, or a usage error
            code = stop.code
    return int(code or 0), out.getvalue(), err.getvalue()


def store_snapshot(home: Path) -> tuple[list[Any], ...]:
    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        return tuple(
            db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("tasks", "events", "requests", "deps")
        )
    finally:
        db.close()


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, (code, out, err)
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert fragment in err, err


@pytest.fixture
def writers(kg: Kugetsu) -> Path:
    out = kg.root / "out"
    out.mkdir()
    dest = f"{out}/{{task_id}}"
    kg.write_config(
        capacity={"cap": 3},
        agents={
            "argv": {"command": ["sh", "-c", WRITE_ARGV, "agent", "{prompt}", dest]},
            "stdin": {"command": ["sh", "-c", WRITE_STDIN, "agent", dest], "prompt_via": "stdin"},
            "file": {"command": ["sh", "-c", WRITE_FILE, "agent", "{prompt}", dest], "prompt_via": "file"},
        },
        default_agent="argv",
    )
    (kg.work / "canary").mkdir()
    return out


def test_prompts_reach_the_agent_byte_exact_via_argv_stdin_and_file(kg: Kugetsu, writers: Path) -> None:
    expected: dict[int, tuple[str, bytes]] = {}

    def add(agent: str, prompt: bytes) -> None:
        code, out, err = run_cli(
            kg.home, ["add", "--agent", agent, "--no-worktree", "--repo", str(kg.work), "-"], stdin=prompt
        )
        assert code == 0, err
        expected[int(out)] = (agent, prompt)

    for agent in ("argv", "stdin", "file"):
        for prompt in PROMPTS:
            add(agent, prompt)
    for agent in ("stdin", "file"):  # what argv cannot carry
        add(agent, BIG)
        add(agent, NUL)
    add("argv", b"x" * (MAX_ARG - 1))  # the longest one argv element can be
    # And through a real command line, as bytes: Python's own argv decoding is in the path.
    for prompt in (PROMPTS[3], PROMPTS[6], PROMPTS[1]):
        added = subprocess.run(
            [PY, "-m", "kugetsu_tui", "add", "--no-worktree", "--", prompt],
            env=kg.env,
            cwd=kg.work,
            capture_output=True,
        )
        assert added.returncode == 0, added.stderr
        expected[int(added.stdout)] = ("argv", prompt)

    result = kg.run()
    assert result.returncode == 0, result.stderr
    for task_id, (agent, prompt) in expected.items():
        got = (writers / str(task_id)).read_bytes()
        assert got == prompt, f"task {task_id} via {agent}: {got[:80]!r} != {prompt[:80]!r}"
        if agent == "argv":
            assert (writers / f"{task_id}.argc").read_text() == "2", "exactly one argv element"
    assert (kg.work / "canary").is_dir() and not (kg.work / "pwned").exists(), "no shell saw a prompt"
    # The store kept each one exactly too (what `requeue` would run again).
    db = sqlite3.connect(kg.home / "state.db")
    db.text_factory = bytes
    stored = dict(db.execute("SELECT id, prompt FROM tasks"))
    db.close()
    for task_id, (_, prompt) in expected.items():
        assert stored[task_id] == prompt


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [(NUL, "NUL byte"), (b"x" * MAX_ARG, "more than one command-line argument can carry"), (BIG, "bytes")],
    ids=["nul", "one-byte-too-long", "1MB"],
)
def test_what_argv_cannot_carry_is_refused_for_argv_agents(
    kg: Kugetsu, writers: Path, prompt: bytes, fragment: str
) -> None:
    kg.add("already queued", "--agent", "stdin")
    before = store_snapshot(kg.home)
    code, out, err = run_cli(kg.home, ["add", "--no-worktree", "--repo", str(kg.work), "-"], stdin=prompt)
    assert_one_line_error(code, out, err, fragment)
    assert 'prompt_via = "stdin" or "file"' in err, "the message says the way out"
    lines = json.dumps({"prompt": text(prompt), "no_worktree": True, "repo": str(kg.work)}) + "\n"
    code, out, err = run_cli(kg.home, ["add", "--from-file", "-"], stdin=lines.encode())
    assert_one_line_error(code, out, err, fragment)
    assert store_snapshot(kg.home) == before


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("[queue]\nmax_log = inf\n", "[queue] max_log: expected a size"),
        ("[queue]\nkill_grace = nan\n", "[queue] kill_grace: expected a duration"),
        ("[queue]\nretry_backoff = -inf\n", "[queue] retry_backoff: expected a duration"),
        (f'[queue]\nmax_log = "{"9" * 400}"\n', "[queue] max_log: expected a size"),
        (f'[queue]\nexpire_after = "{"9" * 400}h"\n', "[queue] expire_after: expected a duration"),
        ('[agents.x]\ncommand = ["x"]\nest_cpu = inf\n', "[agents.x] est_cpu: expected a number of cores"),
        ('[agents.x]\ncommand = ["x"]\ncooldown = nan\n', "[agents.x] cooldown: expected a duration"),
    ],
)
def test_infinite_and_nan_numbers_are_config_errors(kg: Kugetsu, config: str, fragment: str) -> None:
    """TOML has inf and nan, and a few hundred digits make an infinite float: a supervisor
    would crash on them later (an infinite max_log cannot be a byte count)."""
    kg.config_path.write_text(config)
    assert_one_line_error(*run_cli(kg.home, ["cap", "4"]), fragment)
    result = kg.run()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (["add", "--no-worktree", "--timeout", "9" * 400, "x"], b""),
        (["add", "--from-file", "-"], b'{"prompt": "x", "no_worktree": true, "timeout": NaN}\n'),
        (["add", "--from-file", "-"], b'{"prompt": "x", "no_worktree": true, "timeout": Infinity}\n'),
    ],
    ids=["huge-timeout", "json-nan-timeout", "json-infinite-timeout"],
)
def test_infinite_and_nan_timeouts_are_refused(kg: Kugetsu, argv: list[str], stdin: bytes) -> None:
    before = store_snapshot(kg.home) if (kg.home / "state.db").exists() else None
    code, _, err = run_cli(kg.home, argv, stdin)
    assert code == 2 and "timeout" in err and "Traceback" not in err, err
    if before is not None:
        assert store_snapshot(kg.home) == before


# --- random input ------------------------------------------------------------------------

# Everything but what would start a supervisor or a dashboard, or follow a log forever.
COMMANDS = [
    "add",
    "status",
    "cancel",
    "requeue",
    "pause",
    "resume",
    "hold",
    "release",
    "cap",
    "logs",
    "events",
]
OPTIONS = [
    "--json", "--all", "--limit", "--priority", "--max-attempts", "--timeout", "--no-worktree", "--agent",
    "--repo", "--after", "--after-any", "--key", "--base", "--from-file", "--note", "--since", "--task",
    "--type", "--accept", "--help", "--version", "-h", "-", "--",
]  # fmt: skip
WORDS = ["1", "2", "3", "4", "0", "-1", "999", "1,2", "1,x", "fake", "nope", "90s", "0s", "1e9", "nan", "."]
words = st.one_of(
    st.sampled_from(COMMANDS + OPTIONS + WORDS),
    st.text(max_size=12).filter(lambda t: not t.startswith("-")),
    st.binary(max_size=12).map(text).filter(lambda t: not t.startswith("-")),
    st.integers(-(2**70), 2**70).map(str),
)
argvs = st.tuples(st.sampled_from(COMMANDS), st.lists(words, max_size=6)).map(lambda t: [t[0], *t[1]])


@pytest.fixture
def populated(kg: Kugetsu, monkeypatch: pytest.MonkeyPatch) -> Kugetsu:
    """1 queued, 2 held, 3 cancelled, 4 failed; the CLI runs in the work dir (not a repo)."""
    monkeypatch.chdir(kg.work)
    kg.add("one")
    assert kg.main("hold", str(kg.add("two")))[0] == 0
    assert kg.main("cancel", str(kg.add("three")))[0] == 0
    four = kg.add("four")
    db = sqlite3.connect(kg.home / "state.db")
    with db:
        db.execute("UPDATE tasks SET state = 'failed', attempts = 1 WHERE id = ?", (four,))
    db.close()
    return kg


def _check(kg: Kugetsu, argv: list[str], stdin: bytes, good_config: bytes) -> None:
    before = store_snapshot(kg.home)
    config_before = kg.config_path.read_bytes()
    try:
        code, _, err = run_cli(kg.home, argv, stdin)
    finally:
        after = store_snapshot(kg.home)
        config_after = kg.config_path.read_bytes()
        kg.config_path.write_bytes(good_config)
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1, (argv, err)
        assert after == before, f"{argv}: the store changed on an error"
        assert config_after == config_before, f"{argv}: the config changed on an error"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs, stdin=st.binary(max_size=40))
def test_random_command_lines_exit_0_or_2_and_leave_the_store_alone_on_error(
    populated: Kugetsu, argv: list[str], stdin: bytes
) -> None:
    kg = populated
    _check(kg, argv, stdin, kg.config_path.read_bytes())


SECTIONS: dict[str, list[str]] = {
    "capacity": ["cap", "mode", "min", "max", "memory_reserve", "memory_pressure"],
    "queue": ["max_attempts", "retry_backoff", "expire_after", "kill_grace", "max_log", "on_interrupt"],
    "worktree": ["setup", "base", "commit"],
    "agents.fake": ["command", "est_rss", "est_cpu", "max_live", "rate_limit", "cooldown", "cooldown_max",
                    "prompt_via"],
}  # fmt: skip
SAMPLE_VALUES = [
    "90s", "1h", "0s", "-1s", "2GiB", "512MiB", "fixed", "auto", "suggest", "argv", "stdin", "file",
    "requeue", "fail", "off", "pause_newest", "fake", "{prompt}", "", " ",
]  # fmt: skip
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(SAMPLE_VALUES),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "text", "bytes"]))
    if kind == "text":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    config: dict[str, Any] = {
        "default_agent": "fake",
        "capacity": {"cap": 3, "memory_reserve": 0},
        "queue": {"kill_grace": "1s"},
        "agents": {"fake": {"command": ["sh", "-c", "exit 0"]}},
    }
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from([*SECTIONS, "", "hooks", "repos"]))
        if where == "":
            config[draw(st.sampled_from(["default_agent", "colour", "capacity", "queue"]))] = draw(values)
        elif where == "hooks":
            config["hooks"] = draw(values | st.lists(st.dictionaries(st.sampled_from(["on", "command", "timeout", "debounce", "x"]), values, max_size=4), max_size=2))  # fmt: skip
        elif where == "repos":
            config["repos"] = {draw(st.text(max_size=10)): draw(values)}
        else:
            table = config
            for part in where.split("."):
                if not isinstance(table.get(part), dict):
                    table[part] = {}
                table = table[part]
            key = draw(st.sampled_from([*SECTIONS[where], "unknown_key"]))
            table[key] = draw(values)
    try:
        return tomli_w.dumps(config).encode()
    except (TypeError, ValueError):
        assume(False)
        raise


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), command=st.sampled_from(["status", "add", "cap", "requeue"]))
def test_random_config_files_exit_0_or_2_and_leave_the_store_alone_on_error(
    populated: Kugetsu, config: bytes, command: str
) -> None:
    kg = populated
    good = kg.config_path.read_bytes()
    kg.config_path.write_bytes(config)
    argv = {
        "status": ["status", "--json"],
        "add": ["add", "--no-worktree", "a task"],
        "cap": ["cap", "5"],
        "requeue": ["requeue", "4"],
    }[command]
    try:
        before = store_snapshot(kg.home)
        code, _, err = run_cli(kg.home, argv)
        after = store_snapshot(kg.home)
    finally:
        kg.config_path.write_bytes(good)
    assert code in (0, 2), (config, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1, err
        assert after == before, "the store changed on a config error"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_home_owned_by_someone_else_is_refused(kg: Kugetsu) -> None:
    kg.add("one")
    before = store_snapshot(kg.home)
    os.chown(kg.home, 65534, 65534)
    try:
        code, out, err = run_cli(kg.home, ["add", "--no-worktree", "--repo", str(kg.work), "two"])
    finally:
        os.chown(kg.home, 0, 0)
    assert_one_line_error(code, out, err, "belongs to uid 65534, not you")
    assert store_snapshot(kg.home) == before
