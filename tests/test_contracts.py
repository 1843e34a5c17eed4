"""The typed contracts between the engine and its faces: modes as enums, event types as
EventType, the supervisor's published facts as one dataclass."""

from __future__ import annotations

import time
from pathlib import Path

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.messages import AgentSlots, SupervisorFacts
from kugetsu_tui.engine.model import (
    BAD_ENDINGS,
    REQUEUEABLE_STATES,
    CapMode,
    EventType,
    MemoryPressure,
    NewTask,
    OnInterrupt,
    PromptVia,
    State,
)
from kugetsu_tui.engine.slots import unmet_dependencies
from kugetsu_tui.engine.store import Store
from kugetsu_tui.present import supervisor_facts
from tests.helpers.harness import write_toml


def test_modes_in_the_config_are_read_as_enum_members(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_toml(
        path,
        {
            "capacity": {"mode": "auto", "memory_pressure": "pause_newest"},
            "queue": {"on_interrupt": "fail"},
            "agents": {"piped": {"command": ["cat"], "prompt_via": "stdin"}},
            "hooks": [{"on": ["task_error"], "command": ["true"]}],
        },
    )
    config = load_config(path)
    assert config.cap_mode is CapMode.AUTO
    assert config.memory_pressure is MemoryPressure.PAUSE_NEWEST
    assert config.on_interrupt is OnInterrupt.FAIL
    assert config.agents["piped"].prompt_via is PromptVia.STDIN
    assert config.hooks[0].on == (EventType.TASK_ERROR,)
    assert all(isinstance(e, EventType) for e in config.hooks[0].on)


def test_the_defaults_are_enum_members_too(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.toml")
    assert config.cap_mode is CapMode.FIXED
    assert config.on_interrupt is OnInterrupt.REQUEUE
    assert config.agents["claude"].prompt_via is PromptVia.ARGV


def test_events_read_back_from_the_store_carry_an_event_type(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        store.add([NewTask(prompt="p", agent="a", repo=None, no_worktree=True)], 1.0)
        (event,) = store.events()
    finally:
        store.close()
    assert event.type is EventType.TASK_QUEUED


def test_one_set_of_bad_endings() -> None:
    assert {State.FAILED, State.CANCELLED, State.EXPIRED} == BAD_ENDINGS
    assert REQUEUEABLE_STATES is BAD_ENDINGS


def test_after_any_accepts_every_bad_ending_and_waits_for_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        (task_id,) = store.add(
            [NewTask(prompt="p", agent="a", repo=None, no_worktree=True, after_any=True)], 1.0
        )
        task = store.get(task_id)
    finally:
        store.close()
    assert task is not None
    deps = [(n, state) for n, state in enumerate(State, start=100)]
    unmet = {state for _, state in unmet_dependencies(task, deps)}
    assert unmet == set(State) - BAD_ENDINGS - {State.SUCCEEDED}


def test_published_facts_read_back_as_they_were_written(tmp_path: Path) -> None:
    now = time.time()
    facts = SupervisorFacts(
        supervisor_pid=4242,
        cap=3,
        cap_mode=CapMode.SUGGEST,
        suggested_cap=4,
        cap_reason="memory: 9.5 GiB available → 4",
        machine={"cpus": 8},
        admission_blocked=None,
        config_error="bad key",
        cooldowns={"claude": 1_700_000_095.25},
        slots={"claude": AgentSlots(2, 4, 1_700_000_090.5, 1_700_000_080.125)},
    )
    assert SupervisorFacts.from_meta(facts.to_meta()) == facts

    home = Home(tmp_path / "home").ensure()
    store = Store(home.db_path)
    try:
        store.set_meta(facts.to_meta(), now)
        assert supervisor_facts(store, home, now) is None, "no supervisor holds the lock"
    finally:
        store.close()


def test_facts_from_an_older_or_partial_publication() -> None:
    partial = SupervisorFacts.from_meta({"cap": 2, "cap_mode": "no-such-mode"})
    assert partial == SupervisorFacts(cap=2)
