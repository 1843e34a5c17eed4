"""The task state machine: every pair of states, checked in model.py and enforced by the store."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from kugetsu_tui.engine.messages import ActionResult, RequestAction
from kugetsu_tui.engine.model import (
    LIVE_STATES,
    SETTLED_STATES,
    TRANSITIONS,
    EventType,
    IllegalTransition,
    NewTask,
    State,
    check_transition,
)
from kugetsu_tui.engine.store import Store

Q, ST, R, P = State.QUEUED, State.STARTING, State.RUNNING, State.PAUSED
OK, FAIL, CXL, EXP = State.SUCCEEDED, State.FAILED, State.CANCELLED, State.EXPIRED

# The moves DESIGN.md describes, written out independently of model.py:
#   queued -> starting -> running <-> paused -> succeeded | failed | cancelled | expired;
#   a queued task may be cancelled or expire, or fail without starting (spawn failure);
#   a live task may go back to queued (retry with backoff, or interrupted), be cancelled,
#   fail or succeed; a settled task other than succeeded may be requeued by a person.
SPEC = {
    Q: {ST, CXL, EXP, FAIL},
    ST: {R, Q, FAIL, CXL, OK},
    R: {P, OK, FAIL, Q, CXL},
    P: {R, OK, FAIL, Q, CXL},
    OK: set(),
    FAIL: {Q},
    CXL: {Q},
    EXP: {Q},
}

ALL_PAIRS = list(itertools.product(State, State))


def test_the_table_is_the_one_the_design_describes() -> None:
    assert {s: set(t) for s, t in TRANSITIONS.items()} == SPEC


def test_live_and_settled_states() -> None:
    assert {s for s in State if s.is_live} == {ST, R, P} == LIVE_STATES
    assert {s for s in State if s.is_settled} == {OK, FAIL, CXL, EXP} == SETTLED_STATES
    # Only admission leaves the queue for a live state, and nothing settled becomes live.
    for old, new in ALL_PAIRS:
        if new.is_live and new in TRANSITIONS[old] and old not in LIVE_STATES:
            assert (old, new) == (Q, ST)


@pytest.mark.parametrize(("old", "new"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_check_transition(old: State, new: State) -> None:
    if new in SPEC[old]:
        check_transition(7, old, new)
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(7, old, new)
        assert (info.value.task_id, info.value.old, info.value.new) == (7, old, new)
        assert f"{old} -> {new}" in str(info.value)


# A legal way to bring a fresh task to each state through the store's own calls.
PATH_TO = {
    Q: [],
    ST: [ST],
    R: [ST, R],
    P: [ST, R, P],
    OK: [ST, R, OK],
    FAIL: [ST, FAIL],
    CXL: [CXL],
    EXP: [EXP],
}


def _task_in(store: Store, state: State) -> int:
    (task_id,) = store.add([NewTask(prompt=f"to {state}", agent="fake", repo=None, no_worktree=True)], 1.0)
    for step in PATH_TO[state]:
        if step is ST:
            (admitted,) = store.admit(cap=1000, now=2.0)
            assert admitted.id == task_id
        else:
            assert store.transition(task_id, step, now=3.0, event=EventType.TASK_STARTED) is not None
    task = store.get(task_id)
    assert task is not None and task.state is state
    return task_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store(tmp_path / "state.db")
    yield opened
    opened.close()


def _snapshot(path: Path, task_id: int) -> tuple[object, ...]:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    return row, events


@pytest.mark.parametrize(
    ("old", "new"),
    [(a, b) for a, b in ALL_PAIRS if a != b],
    ids=[f"{a}->{b}" for a, b in ALL_PAIRS if a != b],
)
def test_the_store_enforces_every_pair(store: Store, old: State, new: State) -> None:
    task_id = _task_in(store, old)
    before = _snapshot(store.path, task_id)
    if new in SPEC[old]:
        moved = store.transition(task_id, new, now=9.0, event=EventType.TASK_REQUEUED, reason="test")
        assert moved is not None and moved.state is new
        task = store.get(task_id)
        assert task is not None and task.state is new and task.reason == "test"
        last = store.events(task_id=task_id)[-1]
        assert last.type == "task_requeued" and last.data["state"] == str(new)
    else:
        with pytest.raises(IllegalTransition):
            store.transition(task_id, new, now=9.0, event=EventType.TASK_REQUEUED)
        # Nothing changed: neither the task nor the event log.
        assert _snapshot(store.path, task_id) == before


def test_a_lost_race_changes_nothing(store: Store) -> None:
    """With `expect`, a move from an unexpected state is skipped, not forced."""
    task_id = _task_in(store, R)
    before = _snapshot(store.path, task_id)
    assert store.transition(task_id, CXL, now=9.0, event=EventType.TASK_CANCELLED, expect={Q}) is None
    assert _snapshot(store.path, task_id) == before


def test_event_rows_carry_the_task(store: Store) -> None:
    task_id = _task_in(store, OK)
    types = [e.type for e in store.events(task_id=task_id)]
    assert types == ["task_queued", "task_dequeued", "task_started", "task_started"]
    data = store.events(task_id=task_id)[-1].to_json()
    assert data["task_id"] == task_id and data["state"] == "succeeded"
    json.loads(store.events(task_id=task_id)[-1].to_line())


@pytest.mark.parametrize(
    "ok, message",
    [
        (True, "cap 4"),
        (False, "task 3 is queued; only running tasks can be paused"),
        (True, "error: a message that itself reads like a refusal"),
        (False, "ok: a refusal that reads like a success"),
    ],
)
def test_a_supervisors_answer_comes_back_as_it_was_given(store: Store, ok: bool, message: str) -> None:
    """The store keeps a request's answer as text; what the asker reads back is the very
    result the supervisor gave, whatever its message says."""
    request_id = store.add_request(RequestAction.PAUSE, 3, None, 1.0)
    given = ActionResult(ok, message, 3, request_id)
    store.finish_request(request_id, given.encode(), 2.0)
    answer = store.request_result(request_id)
    assert answer is not None
    assert ActionResult.decode(answer, 3, request_id) == given
