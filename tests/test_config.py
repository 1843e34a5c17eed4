"""config.toml's keys, declared once: the example file is what the tables make, every key
in it is valid, every number is bounded, and a value past a bound (by hand or by hot
reload into a running supervisor) is a one-line error that changes nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.config.agent_keys import AGENT, HOOK
from kugetsu_tui.engine.config.keys import REPO, SECTIONS, TOP, Key, Table
from kugetsu_tui.engine.config.kinds import Cores, Dollars, Duration, Size, Whole
from kugetsu_tui.engine.store import Store
from kugetsu_tui.errors import ConfigError
from tests.helpers.harness import Kugetsu, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "kugetsu.example.toml"
HUGE = 99999999999999999999  # past SQLite's 64-bit INTEGER

# What a table needs around a key to be read: its header and its required keys.
PREAMBLE = {
    TOP.header: ("", ""),
    **{t.header: (f"{t.header}\n", t.header) for t in SECTIONS.values()},
    AGENT.header: ('[agents.x]\ncommand = ["x"]\n', "[agents.x]"),
    REPO.header: ('[repos."/"]\n', '[repos."/"]'),
    HOOK.header: ('[[hooks]]\non = ["task_error"]\ncommand = ["cat"]\n', "[[hooks]] #1"),
}
TABLES = (TOP, *SECTIONS.values(), REPO, AGENT, HOOK)


def test_the_example_file_is_what_the_tables_make() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "kugetsu_tui.engine.config", "--example"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert EXAMPLE.read_text() == made, "regenerate: python -m kugetsu_tui.engine.config --example"


def test_every_key_of_every_table_is_in_the_example_under_its_table() -> None:
    headers = {
        **{table.header: table for table in SECTIONS.values()},
        '[repos."~/src/app"]': REPO,
        "[agents.opencode]": AGENT,
        "[[hooks]]": HOOK,
    }
    seen: set[tuple[str, str]] = set()
    table: Table | None = TOP
    for line in EXAMPLE.read_text().splitlines():
        text = line.removeprefix("# ")
        if text.startswith("["):
            table = headers.get(text)  # None under [agents.claude] and the other built-ins
        elif table is not None and (match := re.match(r"(\w+) = ", text)):
            seen.add((table.header, match.group(1)))
    wanted = {(t.header, k.name) for t in TABLES for k in t.keys}
    assert wanted - seen == set()


def test_the_example_loads_as_the_defaults_and_its_commented_keys_are_valid(tmp_path: Path) -> None:
    assert replace(load_config(EXAMPLE), path=None) == Config()
    uncommented = tmp_path / "config.toml"
    uncommented.write_text(re.sub(r"^# (\[.*\]$|\w+ = )", r"\1", EXAMPLE.read_text(), flags=re.M))
    config = load_config(uncommented)
    assert config.worktree_base == "main"
    assert config.agents["opencode"].max_live == 2
    assert len(config.hooks) == 3 and config.hooks[0].on == ("task_error",)
    assert list(config.repo_max_live.values()) == [1]


def _edges(key: Key) -> tuple[list[Any], list[Any]]:
    """Values just inside and just outside the key's bounds."""
    kind = key.kind
    if isinstance(kind, Whole):
        return [kind.lo, kind.hi], [kind.lo - 1, kind.hi + 1, HUGE, -HUGE]
    if isinstance(kind, Duration):
        if kind.above_zero:
            return ["365d", "1ms"], ["366d", 365 * 86400 + 1, HUGE, 0, -1, "inf", float("nan")]
        return ["365d", 0], ["366d", 365 * 86400 + 1, HUGE, -1, "inf", float("nan")]
    if isinstance(kind, Size):
        return ["1PiB", 0], ["1025TiB", 2**50 + 1, HUGE, -1]
    if isinstance(kind, Cores):
        return [1024, 0.001], [1024.5, 0, HUGE, -1]
    if isinstance(kind, Dollars):
        return [10**9, 0.01], [10**9 + 0.5, 0, HUGE, -1, "20", float("nan")]
    return [], []


NUMERIC = [(t, k) for t in TABLES for k in t.keys if _edges(k) != ([], [])]


def test_every_number_in_the_tables_has_bounds() -> None:
    names = {k.name for _, k in NUMERIC}
    # Each key whose default is a number is one of the bounded kinds above.
    numbers = {
        k.name
        for t in TABLES
        for k in t.keys
        if isinstance(k.default, (int, float)) and not isinstance(k.default, bool)
    }
    assert numbers <= names
    assert {"cap", "min", "max", "max_attempts", "max_live", "kill_grace", "timeout", "est_rss"} <= names


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value != value:
        return "nan"
    return str(value)


@pytest.mark.parametrize(("table", "key"), NUMERIC, ids=[f"{t.header or 'top'} {k.name}" for t, k in NUMERIC])
def test_a_value_past_a_bound_names_file_key_and_bounds(tmp_path: Path, table: Table, key: Key) -> None:
    path = tmp_path / "config.toml"
    preamble, where = PREAMBLE[table.header]
    inside, outside = _edges(key)
    extra = "max = 1024\n" if key.name == "min" else ""  # so that min <= max holds at min = 1024
    for value in inside:
        path.write_text(f"{preamble}{key.name} = {_toml(value)}\n{extra}")
        load_config(path)
    for value in outside:
        path.write_text(f"{preamble}{key.name} = {_toml(value)}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: {where} {key.name}: expected {key.kind.expected}, got "), message


def test_cap_past_its_bound_on_the_command_line_changes_nothing(kg: Kugetsu) -> None:
    before = kg.config_path.read_bytes()
    for argv in (("cap", str(HUGE)), ("cap", "1025")):
        result = kg.cli(*argv)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "expected a whole number from 1 to 1024" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert kg.config_path.read_bytes() == before
    assert kg.cli("cap", "1024").returncode == 0  # the bound itself is a cap


def test_a_huge_cap_by_hot_reload_keeps_the_supervisor_and_the_last_good_cap(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 2})
    proc = kg.start_supervisor()
    store = Store(kg.home / "state.db")
    try:
        wait_until(lambda: store.meta().get("cap", (None,))[0] == 2, "the supervisor to publish its cap")
        kg.config_path.write_text(kg.config_path.read_text().replace("cap = 2", f"cap = {HUGE}"))

        def reported() -> list[Any]:
            return [e for e in store.events() if e.type == "config_error"]

        errors = wait_until(reported, "the supervisor to report the bad config")
        assert "[capacity] cap: expected a whole number from 1 to 1024" in errors[-1].data["error"]
        assert proc.poll() is None, kg.output(proc)[1]
        assert store.meta().get("cap", (None,))[0] == 2, "the last good config stays in force"
        assert "OverflowError" not in kg.output(proc)[1]
        kg.write_config(capacity={"cap": 4})  # it still reloads, and runs work
        wait_until(lambda: store.meta().get("cap", (None,))[0] == 4, "the supervisor to apply the good cap")
        kg.wait_state(kg.add("ok"), "succeeded")
        assert proc.poll() is None
    finally:
        store.close()
