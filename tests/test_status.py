"""`kugetsu status` on a long queue: it reads only what it shows, and what it shows is
what a walk of the whole queue would say (positions, wait reasons), whichever tasks are
asked for (`--limit`, `--state`, `--id`, `--json --all`)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.store import SCHEMA_VERSION, Store
from kugetsu_tui.present import Selection, status_report
from tests.helpers.harness import FAKE_AGENT, PY, Kugetsu, script, wait_until


def _json(kg: Kugetsu, *args: str) -> dict[str, Any]:
    out = kg.cli("status", "--json", *args)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def _unlocked(db_path: Path) -> bool:
    """No write transaction is open on the database (a stopped writer would hold it)."""
    db = sqlite3.connect(db_path, timeout=0.05)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


@pytest.fixture
def frozen(kg: Kugetsu) -> Iterator[dict[str, int]]:
    """A supervisor that holds the home (so tasks with a free slot say "starting") but is
    stopped (SIGSTOP) before it admits them, over a queue with every kind of wait: held,
    an agent at its limit, backoff, an unmet dependency, priorities, and the cap.

    cap 3, one task live (agent fake, max_live 1), so two free slots."""
    fake = [PY, FAKE_AGENT, "{prompt}"]
    kg.write_config(
        queue={"retry_backoff": "1h"},
        agents={"fake": {"command": fake, "max_live": 1}, "other": {"command": fake}},
    )
    gate = kg.root / "gate"
    ids = {"F": kg.add(script(["exit", 1]), "--max-attempts", "2")}
    ids["G"] = kg.add(script(["wait-file", gate]))
    supervisor = kg.start_supervisor()
    try:
        kg.wait_state(ids["G"], "running")
        wait_until(
            lambda: kg.task(ids["F"])["attempts"] == 1 and kg.task(ids["F"])["state"] == "queued",
            "F in backoff",
        )

        def stopped_between_transactions() -> bool:
            os.kill(supervisor.pid, signal.SIGSTOP)
            if _unlocked(kg.home / "state.db"):
                return True
            os.kill(supervisor.pid, signal.SIGCONT)
            return False

        wait_until(stopped_between_transactions, "the supervisor stopped outside a transaction")
        other = ("--agent", "other")
        ids["A"] = kg.add(script(["ok"]), *other)
        ids["H"] = kg.add(script(["ok"]), *other, "--priority", "5")
        assert kg.main("hold", str(ids["H"]))[0] == 0
        ids["D"] = kg.add(script(["ok"]), *other, "--after", str(ids["G"]))
        ids["B"] = kg.add(script(["ok"]), "--priority", "2")
        ids["C"] = kg.add(script(["ok"]), *other)
        ids["E"] = kg.add(script(["ok"]), *other, "--priority", "1")
        ids["K"] = kg.add(script(["ok"]), *other)
        yield ids
    finally:
        os.kill(supervisor.pid, signal.SIGCONT)
        gate.touch()


def test_positions_and_wait_reasons_of_every_kind(kg: Kugetsu, frozen: dict[str, int]) -> None:
    tasks = {t["id"]: t for t in _json(kg, "--all")["tasks"]}
    got = {name: (tasks[i]["position"], tasks[i]["wait_reason"]) for name, i in frozen.items() if name != "G"}
    backoff = got.pop("F")
    assert (
        backoff[0] == 3
        and backoff[1].startswith("backoff until ")
        and backoff[1].endswith("(attempt 2 of 2)")
    )
    assert got == {
        "H": (None, "held (kugetsu release to let it run)"),
        "B": (1, "agent fake at its limit (1/1 live)"),
        "E": (2, "starting"),
        "A": (4, "starting"),
        "D": (5, f"waiting for task {frozen['G']} (running)"),
        "C": (6, "cap full (1/3 live)"),
        "K": (7, "cap full (1/3 live)"),
    }


def test_any_window_says_what_the_whole_queue_says(kg: Kugetsu, frozen: dict[str, int]) -> None:
    whole = {t["id"]: t for t in _json(kg, "--all")["tasks"]}
    queued = [t for t in whole.values() if t["state"] == "queued"]
    assert len(queued) == 8

    def same(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            assert row == whole[row["id"]], f"task {row['id']}"

    # One task alone: its position and reason need the tasks ahead it does not list.
    for task_id in [t["id"] for t in queued]:
        report = _json(kg, "--id", str(task_id))
        assert [t["id"] for t in report["tasks"]] == [task_id] and report["more"] == 0
        same(report["tasks"])
    some = _json(kg, "--id", f"{frozen['K']},{frozen['C']},{frozen['G']}")
    assert [t["id"] for t in some["tasks"]] == [frozen["G"], frozen["C"], frozen["K"]]
    same(some["tasks"])
    head = _json(kg, "--state", "queued", "--limit", "3")
    assert [t["id"] for t in head["tasks"]] == [frozen["H"], frozen["B"], frozen["E"]]
    assert head["more"] == 5
    same(head["tasks"])
    # Filters choose the rows, never the counts.
    assert head["counts"] == some["counts"] and head["counts"]["queued"] == 8
    # The person's view says the same.
    text = kg.cli("status", "--state", "queued").stdout
    line = next(row for row in text.splitlines() if row.split()[:1] == [str(frozen["C"])])
    assert "#6" in line and line.endswith("cap full (1/3 live)")


def test_filters_and_limit(kg: Kugetsu) -> None:
    ok = [kg.add(script(["ok"])) for _ in range(3)]
    assert kg.run().returncode == 0
    queued = [kg.add(script(["ok"]), "--priority", str(p)) for p in (0, 1, 2, 3)]
    everything = _json(kg, "--all")
    # Display order: live, then queued in admission order, then ended newest first.
    assert [t["id"] for t in everything["tasks"]] == [*reversed(queued), *reversed(ok)]
    assert [t["position"] for t in everything["tasks"][:4]] == [1, 2, 3, 4]
    assert everything["more"] == 0
    done = _json(kg, "--state", "succeeded,failed")
    assert [t["id"] for t in done["tasks"]] == list(reversed(ok))
    two = _json(kg, "--limit", "2")
    assert [t["id"] for t in two["tasks"]] == [queued[3], queued[2]] and two["more"] == 5
    picked = _json(kg, "--id", f"{ok[0]},{queued[0]}")
    assert [(t["id"], t["position"]) for t in picked["tasks"]] == [(queued[0], 4), (ok[0], None)]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--state", "queued,sleeping"), "unknown state 'sleeping'"),
        (("--id", "3,x"), "expected a task id"),
        (("--id", "999"), "no task 999"),
    ],
)
def test_bad_filters_are_one_line_errors(kg: Kugetsu, args: tuple[str, ...], fragment: str) -> None:
    kg.add(script(["ok"]))
    out = kg.cli("status", "--json", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert fragment in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def _fill(kg: Kugetsu, queued: int) -> None:
    path = kg.root / "tasks.jsonl"
    lines = []
    for n in range(queued):
        task: dict[str, Any] = {"prompt": f"task {n}", "no_worktree": True, "repo": str(kg.work)}
        if n % 7 == 0:
            task["priority"] = n % 5
        lines.append(json.dumps(task) + "\n")
    path.write_text("".join(lines))
    code, _, err = kg.main("add", "--from-file", str(path))
    assert code == 0, err


def test_json_all_lists_every_task_as_valid_json(kg: Kugetsu) -> None:
    _fill(kg, 1200)
    assert kg.main("hold", "5", "600")[0] == 0
    report = _json(kg, "--all")
    assert report["counts"]["queued"] == len(report["tasks"]) == 1200 and report["more"] == 0
    assert sorted(t["id"] for t in report["tasks"]) == list(range(1, 1201))
    positions = {t["id"]: t["position"] for t in report["tasks"]}
    assert positions[5] is positions[600] is None
    assert sorted(p for p in positions.values() if p is not None) == list(range(1, 1199))
    order = [(-t["priority"], t["id"]) for t in report["tasks"]]
    assert order == sorted(order)
    # Without --all a script gets a window and is told how much it left out.
    window = _json(kg)
    assert len(window["tasks"]) == 50 and window["more"] == 1150
    assert window["tasks"] == report["tasks"][:50]


def _rows_read(store: Store, run: Any) -> tuple[int, list[str]]:
    """Run `run()` and count the task rows its SELECTs return, by replaying every
    statement SQLite traced (with its values bound) apart from counts."""
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        run()
    finally:
        store.db.set_trace_callback(None)
    reader = sqlite3.connect(store.path)
    try:
        rows = 0
        for sql in statements:
            if sql.lstrip().upper().startswith("SELECT") and " FROM tasks" in sql and "count(" not in sql:
                rows += len(reader.execute(sql).fetchall())
        return rows, statements
    finally:
        reader.close()


def test_status_on_a_long_queue_reads_only_its_window(kg: Kugetsu) -> None:
    _fill(kg, 20_000)
    home = Home(kg.home)
    config = load_config(home.config_path)
    store = Store(home.db_path)
    try:
        text_view = Selection(limit=50, recent_succeeded=5)
        report: dict[str, Any] = {}

        def read() -> None:
            report.update(status_report(store, home, config, time.time(), text_view))

        rows, statements = _rows_read(store, read)
        assert len(report["tasks"]) == 50 and report["more"] == 19_950
        assert report["counts"]["queued"] == 20_000
        # The window, the live tasks (none) and the one queued task the advisor looks at.
        assert rows <= 60, statements
        polled = {}

        def poll() -> None:
            polled.update(status_report(store, home, config, time.time(), Selection(ids=frozenset({19_999}))))

        rows, statements = _rows_read(store, poll)
        assert [t["id"] for t in polled["tasks"]] == [19_999] and rows <= 5, statements
    finally:
        store.close()


def test_json_all_streams_in_constant_memory(kg: Kugetsu) -> None:
    """Peak RSS of `status --json --all` grows far less than the JSON it writes."""
    _fill(kg, 2_000)

    def peak(queued: int) -> tuple[int, int]:
        # Through a small parent: Linux counts the parent's own peak at exec as the child's
        # ru_maxrss, and this test process grew while it filled the queue.
        measure = (
            "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); _, s, u = os.wait4(p.pid, 0);"
            " print(u.ru_maxrss * 1024, os.waitstatus_to_exitcode(s), file=sys.stderr)"
        )
        argv = [PY, "-c", measure, PY, "-m", "kugetsu_tui", "status", "--json", "--all"]
        with open(kg.root / f"all-{queued}.json", "wb") as out:
            done = subprocess.run(
                argv, env=kg.env, stdout=out, stderr=subprocess.PIPE, cwd=kg.work, check=True
            )
        rss, code = done.stderr.decode().split()
        assert code == "0"
        return int(rss), (kg.root / f"all-{queued}.json").stat().st_size

    small_rss, small_size = peak(2_000)
    _fill(kg, 18_000)
    big_rss, big_size = peak(20_000)
    assert big_size - small_size > 5 * 2**20  # 18,000 more tasks: megabytes more JSON
    assert big_rss - small_rss < (big_size - small_size) / 2


def test_an_older_home_gets_the_new_index_when_opened(kg: Kugetsu) -> None:
    task_id = kg.add(script(["ok"]))
    with closing(sqlite3.connect(kg.home / "state.db")) as db:  # as a home from before the index
        db.execute("DROP INDEX tasks_by_state")
        db.execute("PRAGMA user_version = 1")
        db.commit()
    report = _json(kg, "--id", str(task_id))
    assert [t["id"] for t in report["tasks"]] == [task_id]
    with closing(sqlite3.connect(kg.home / "state.db")) as db:
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert "tasks_by_state" in names and version == SCHEMA_VERSION
