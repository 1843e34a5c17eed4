"""The agents' output read into results, usage and verdicts (captured real output under
tests/agent_output/), the rate-limit episode policy and how rate limits shape concurrency
(AIMD), and the agent config keys."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from kugetsu_tui.engine import agents
from kugetsu_tui.engine.agents import (
    RECOVER_AFTER,
    Cooldown,
    Outcome,
    Slots,
    credit_slots,
    cut_slots,
    next_cooldown,
    read_log,
    verdict,
)
from kugetsu_tui.engine.config import AgentConfig, config_from_dict
from kugetsu_tui.engine.model import AgentUsage
from kugetsu_tui.engine.store import SCHEMA_VERSION, Store
from kugetsu_tui.errors import ConfigError

CAPTURES = Path(__file__).parent / "agent_output"


def capture(name: str) -> str:
    return (CAPTURES / f"{name}.jsonl").read_text()


# (capture, output format, exit ok, timed out) -> (outcome, result, usage, session?, retry_after, reason has)
CASES = [
    (
        "claude-edit",
        "claude-stream-json",
        True,
        False,
        Outcome.SUCCEEDED,
        "Wrote hello.txt as asked.",
        AgentUsage(240, 60, 0.0027),
        None,
        None,
    ),
    (
        "claude-401",
        "claude-stream-json",
        False,
        False,
        Outcome.FATAL,
        "Invalid API key · Fix external API key",
        AgentUsage(0, 0, 0.0),
        None,
        "Invalid API key",
    ),
    # claude retries a 429 itself, silently, until the attempt's timeout ends it
    ("claude-429", "claude-stream-json", False, True, Outcome.RATE_LIMITED, None, None, 40.0, "429"),
    (
        "claude-529",
        "claude-stream-json",
        False,
        False,
        Outcome.RATE_LIMITED,
        None,
        AgentUsage(0, 0, 0.0),
        None,
        "529",
    ),
    (
        "codex-edit",
        "codex-json",
        True,
        False,
        Outcome.SUCCEEDED,
        "Wrote hello.txt as asked.",
        AgentUsage(400, 80, None),
        None,
        None,
    ),
    ("codex-401", "codex-json", False, False, Outcome.FATAL, None, None, None, "401 Unauthorized"),
    (
        "codex-429",
        "codex-json",
        False,
        False,
        Outcome.RATE_LIMITED,
        None,
        None,
        None,
        "429 Too Many Requests",
    ),
    ("codex-529", "codex-json", False, False, Outcome.RATE_LIMITED, None, None, None, "Overloaded"),
    (
        "opencode-edit",
        "opencode-json",
        True,
        False,
        Outcome.SUCCEEDED,
        "Wrote hello.txt as asked.",
        AgentUsage(300, 50, 0.0),
        None,
        None,
    ),
    ("opencode-401", "opencode-json", False, False, Outcome.FATAL, None, None, None, "Incorrect API key"),
]


@pytest.mark.parametrize(
    ("name", "output", "ok", "timed_out", "outcome", "result", "usage", "retry_after", "reason"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_captured_output_reads_as_the_agent_said(
    name: str,
    output: str,
    ok: bool,
    timed_out: bool,
    outcome: Outcome,
    result: str | None,
    usage: AgentUsage | None,
    retry_after: float | None,
    reason: str | None,
) -> None:
    reading = read_log(output, capture(name))
    if result is not None:
        assert reading.result == result
    assert reading.usage == usage
    assert reading.session_id
    said = verdict(reading, exited_ok=ok, timed_out=timed_out)
    assert said.outcome is outcome
    assert said.retry_after == retry_after
    if reason is None:
        assert said.reason is None
    else:
        assert said.reason is not None and reason in said.reason
        assert "\n" not in said.reason


def test_a_json_agent_that_reported_nothing_has_no_usage_not_zero() -> None:
    reading = read_log("claude-stream-json", "Error: something broke before any output\n")
    assert reading.usage is None and reading.result is None
    said = verdict(reading, exited_ok=False)
    assert said.outcome is Outcome.FAILED
    assert said.reason == "Error: something broke before any output"


def test_the_meaningful_line_is_the_last_error_not_the_last_line() -> None:
    text = "working\nError: cannot write src/app.py: permission denied\ncleaning up\nbye\n"
    said = verdict(read_log("text", text), exited_ok=False)
    assert (said.outcome, said.reason) == (
        Outcome.FAILED,
        "Error: cannot write src/app.py: permission denied",
    )


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        ("Not logged in · Please run /login", Outcome.FATAL),
        ("Error: Invalid API key", Outcome.FATAL),
        ("HTTP 429 Too Many Requests, retry-after: 12", Outcome.RATE_LIMITED),
        (
            '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}} 529',
            Outcome.RATE_LIMITED,
        ),
        ("segfault", Outcome.FAILED),
    ],
)
def test_preset_patterns_over_a_text_log(line: str, outcome: Outcome) -> None:
    said = verdict(read_log("text", line + "\n"), exited_ok=False)
    assert said.outcome is outcome
    if "retry-after" in line:
        assert said.retry_after == 12.0


def test_only_the_last_attempt_is_read() -> None:
    first = agents.attempt_header(1, "claude", 0.0) + "Error: Invalid API key\n"
    log = first + agents.attempt_footer("exit code 1", 2.25, None) + agents.attempt_header(2, "claude", 9.0)
    log += "all good\n"
    assert agents.this_attempt(log) == "\nall good\n"
    assert verdict(read_log("text", agents.this_attempt(log)), exited_ok=False).outcome is Outcome.FAILED


def test_attempt_header_and_footer_lines() -> None:
    header = agents.attempt_header(2, "cl\x1b]0;x\x07aude", 0.0)
    assert header.startswith("── attempt 2 · claude · started ") and header.endswith(" ──\n")
    assert "\x1b" not in header
    usage = AgentUsage(240, 60, 0.0027)
    assert agents.attempt_footer("exit code 0", 1.25, usage) == (
        "── exit code 0 · 1.2s · 240 tokens in · 60 tokens out · $0.0027 ──\n"
    )
    assert agents.attempt_footer("timed out, killed by SIGTERM", 3725, AgentUsage(None, 5, None)) == (
        "── timed out, killed by SIGTERM · 1h02m05s · 5 tokens out ──\n"
    )
    assert agents.attempt_footer("not started: no such program", None, None) == (
        "── not started: no such program ──\n"
    )


def test_control_characters_in_a_result_are_neutralised_and_it_is_bounded() -> None:
    text = '{"type":"result","result":"ok\\u001b[2Jdone' + "x" * 9000 + '"}\n'
    reading = read_log("claude-stream-json", text)
    assert reading.result is not None
    assert "\x1b" not in reading.result and len(reading.result) == agents.RESULT_CHARS


# --- one rate-limit episode, one cooldown ------------------------------------------------


def test_four_attempts_hitting_one_limit_make_one_cooldown_not_four_doublings() -> None:
    current: Cooldown | None = None
    news = []
    for n in range(4):  # all four started at t=0 and come back within a second
        current, new = next_cooldown(
            current,
            now=100.0 + n * 0.2,
            attempt_started=0.0,
            reported_at=100.0,
            retry_after=None,
            base=30,
            longest=1800,
        )
        news.append(new)
    assert news == [True, False, False, False]
    assert current is not None and (current.until, current.hits) == (130.0, 1)
    # One that started before the episode and comes back after it ended joins it too.
    late, new = next_cooldown(
        current, now=200.0, attempt_started=50.0, reported_at=200.0, retry_after=None, base=30, longest=1800
    )
    assert (late, new) == (current, False)
    # A fresh attempt that hits the limit again is a new episode: the backoff doubles.
    again, new = next_cooldown(
        current, now=200.0, attempt_started=131.0, reported_at=200.0, retry_after=None, base=30, longest=1800
    )
    assert new and (again.until, again.hits, again.reported) == (260.0, 2, False)


def test_a_reported_reset_is_used_and_extends_the_episode() -> None:
    first, new = next_cooldown(
        None, now=100.0, attempt_started=90.0, reported_at=95.0, retry_after=40.0, base=30, longest=1800
    )
    assert new and (first.until, first.reported) == (135.0, True)
    later, new = next_cooldown(
        first, now=101.0, attempt_started=90.0, reported_at=101.0, retry_after=60.0, base=30, longest=1800
    )
    assert not new and later.until == 161.0 and later.hits == 1
    capped, _ = next_cooldown(
        None, now=0.0, attempt_started=None, reported_at=0.0, retry_after=1e9, base=30, longest=1800
    )
    assert capped.until == 1800.0


# --- rate limits shape concurrency (AIMD) ---------------------------------------------------


def test_an_episode_halves_the_limit_down_to_one() -> None:
    first = cut_slots(None, 4, now=100.0)
    assert (first.effective, first.since, first.limited_at) == (2, 100.0, 100.0)
    assert cut_slots(first, 4, now=200.0).effective == 1
    assert cut_slots(Slots(1, 0.0, 0.0), 4, now=300.0).effective == 1  # never below one
    assert cut_slots(Slots(8, 0.0, 0.0), 3, now=300.0).effective == 1  # of the ceiling, if lower now
    assert cut_slots(None, 5, now=0.0).effective == 2


def test_each_clean_stretch_gives_one_slot_back_up_to_the_ceiling() -> None:
    slots: Slots | None = cut_slots(None, 4, now=100.0)
    seen = []
    for n in range(2 * RECOVER_AFTER):
        assert slots is not None
        slots = credit_slots(slots, 4, now=200.0 + n, admitted_at=150.0)
        seen.append(None if slots is None else slots.effective)
    assert seen == [2] * (RECOVER_AFTER - 1) + [3] * RECOVER_AFTER + [None]  # None: back at 4
    cut = cut_slots(None, 4, now=100.0)
    before = credit_slots(cut, 4, now=200.0, admitted_at=99.0)  # admitted before the cut
    assert before == cut
    back = credit_slots(Slots(2, 100.0, 100.0, RECOVER_AFTER - 1), 4, now=300.0, admitted_at=150.0)
    assert back == Slots(3, 300.0, 100.0, 0)  # since: when it changed; the count starts over


# --- config -------------------------------------------------------------------------------


def test_a_builtin_table_with_only_env_keeps_the_preset(tmp_path: Path) -> None:
    config = config_from_dict(
        {"agents": {"claude": {"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}}}}, tmp_path / "c.toml"
    )
    claude = config.agents["claude"]
    assert claude.command == agents.PRESETS["claude"].command
    assert claude.output == "claude-stream-json" and claude.fatal == agents.FATAL_PATTERNS
    assert claude.rate_limit == agents.RATE_LIMIT_PATTERNS
    assert dict(claude.env) == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}
    assert "127.0.0.1" not in repr(claude)  # env values are never shown


def test_presets_are_non_interactive_and_may_edit() -> None:
    assert "--permission-mode" in agents.PRESETS["claude"].command
    assert (
        agents.PRESETS["claude"].command[agents.PRESETS["claude"].command.index("--permission-mode") + 1]
        == "acceptEdits"
    )
    codex = agents.PRESETS["codex"].command
    assert codex[codex.index("--sandbox") + 1] == "workspace-write" and "--json" in codex
    assert agents.PRESETS["opencode"].command[:4] == ("opencode", "run", "--format", "json")


def test_a_custom_agent_has_no_patterns_unless_given(tmp_path: Path) -> None:
    config = config_from_dict({"agents": {"mine": {"command": ["mine", "{prompt}"]}}}, tmp_path / "c.toml")
    mine = config.agents["mine"]
    assert (mine.output, mine.rate_limit, mine.fatal, mine.timeout) == ("text", (), (), None)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"env": {"BAD NAME": "x"}}, "[agents.claude] env: expected a table of strings"),
        ({"env": ["A=1"]}, "[agents.claude] env: expected a table of strings"),
        ({"fatal": ["(unclosed"]}, "[agents.claude] fatal: '(unclosed' is not a regular expression"),
        ({"output": "xml"}, '[agents.claude] output: expected "text", "claude-stream-json"'),
        ({"timeout": "0s"}, "[agents.claude] timeout: expected a duration"),
    ],
)
def test_bad_agent_keys_name_the_key(tmp_path: Path, spec: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"agents": {"claude": spec}}, tmp_path / "c.toml")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_queue_timeout_is_the_default(tmp_path: Path) -> None:
    config = config_from_dict({"queue": {"timeout": "90s"}}, tmp_path / "c.toml")
    assert config.default_timeout == 90.0
    assert AgentConfig("x", ("x",)).timeout is None


# --- store -------------------------------------------------------------------------------


def test_an_older_state_db_gains_the_result_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    with closing(sqlite3.connect(path)) as db:  # as a home made before these columns
        db.execute("ALTER TABLE tasks DROP COLUMN result")
        db.execute("ALTER TABLE tasks DROP COLUMN reported_usage")
        db.execute("PRAGMA user_version = 2")
        db.commit()
    store = Store(path)
    try:
        columns = {row[1] for row in store.db.execute("PRAGMA table_info(tasks)")}
        assert {"result", "reported_usage"} <= columns
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        store.close()


def test_the_shown_command_masks_the_agents_env(tmp_path: Path) -> None:
    from kugetsu_tui.engine.commands import build_command
    from kugetsu_tui.engine.home import Home
    from kugetsu_tui.engine.model import State, Task

    agent = AgentConfig("claude", ("claude", "-p", "{prompt}"), env={"ANTHROPIC_API_KEY": "sk-secret"})
    task = Task(1, "hi", "claude", None, True, 0, 3, None, State.QUEUED, 1, False, 0.0, 0.0)
    command = build_command(agent, task, tmp_path, Home(tmp_path / "home"))
    assert command.env["ANTHROPIC_API_KEY"] == "sk-secret"  # what the agent gets
    assert command.shell_line() == "ANTHROPIC_API_KEY=•••• claude -p hi"  # what a person sees


def test_args_go_before_the_prompt_of_the_preset(tmp_path: Path) -> None:
    config = config_from_dict({"agents": {"claude": {"args": ["--model", "sonnet"]}}}, tmp_path / "c.toml")
    *_, model, name, prompt = config.agents["claude"].command
    assert (model, name, prompt) == ("--model", "sonnet", "{prompt}")
    assert config.agents["claude"].command[:2] == ("claude", "-p")


def test_trouble_reported_while_running_ends_the_attempt_early() -> None:
    retrying = read_log("claude-stream-json", capture("claude-429"))
    said = agents.reported_trouble(retrying)
    assert said is not None and (said.outcome, said.retry_after) == (Outcome.RATE_LIMITED, 40.0)
    assert agents.reported_trouble(read_log("claude-stream-json", capture("claude-edit"))) is None
    # Stray lines (stderr) of a JSON agent are not enough to end it while it runs.
    assert agents.reported_trouble(read_log("codex-json", "HTTP 429 in a test fixture name\n")) is None
