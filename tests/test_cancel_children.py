"""Cancelling a planner: its child tasks (added from inside its run) go along with
--children or when the person at a terminal says so; otherwise they keep running and the
note says how to cancel them. Real agents add the children through the real CLI."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess

from tests.helpers.harness import PY, Kugetsu, script, wait_until


def _planner(kg: Kugetsu) -> tuple[int, list[int]]:
    """A running planner whose agent added two children, one of them running (the cap is
    2) and one queued; the running one added a grandchild, queued."""
    kg.write_config(capacity={"cap": 2})
    kg.start_supervisor()
    ids, grand_ids = kg.root / "ids", kg.root / "grand-ids"
    child = script(["add-task", kg.home, grand_ids, script(["hang", 60])], ["hang", 60])
    parent = kg.add(
        script(
            ["add-task", kg.home, ids, child],
            ["add-task", kg.home, ids, script(["hang", 60])],
            ["hang", 60],
        )
    )
    found = wait_until(
        lambda: ids.exists() and len(kids := [int(x) for x in ids.read_text().split()]) == 2 and kids,
        "the planner to add two children",
    )
    grandchild = int(wait_until(lambda: grand_ids.exists() and grand_ids.read_text().strip(), "a grandchild"))
    kg.wait_state(found[0], "running")
    assert kg.task(found[1])["state"] == "queued" and kg.task(grandchild)["state"] == "queued"
    assert kg.task(found[0])["parent"] == parent and kg.task(grandchild)["parent"] == found[0]
    return parent, [*found, grandchild]


def test_cancel_children_takes_the_planners_whole_tree_along(kg: Kugetsu) -> None:
    parent, kids = _planner(kg)
    unrelated = kg.add(script(["hang", 60]))
    done = kg.cli("cancel", str(parent), "--children")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [f"task {i}" for i in (parent, *kids)]
    for task_id in (parent, *kids):
        kg.wait_state(task_id, "cancelled")
    assert kg.task(unrelated)["state"] in ("queued", "starting", "running")
    kg.main("cancel", str(unrelated))
    wait_until(lambda: not kg.agent_processes(children=True), "every agent to end")


def test_without_a_terminal_cancel_says_which_children_keep_running_and_how(kg: Kugetsu) -> None:
    parent, kids = _planner(kg)
    done = kg.cli("cancel", str(parent))
    assert done.returncode == 0, done.stderr
    listed = " ".join(map(str, kids))
    assert done.stderr == (
        f"kugetsu: note: task {parent}'s 3 child tasks ({', '.join(map(str, kids))}) keep running; "
        f"cancel them with `kugetsu cancel {listed}` (or cancel with --children to take them along)\n"
    )
    kg.wait_state(parent, "cancelled")
    assert {kg.task(k)["state"] for k in kids} <= {"queued", "starting", "running"}, "they go on"
    command = re.search(r"`kugetsu (cancel [\d ]+)`", done.stderr)
    assert command
    assert kg.cli(*command.group(1).split()).returncode == 0
    for task_id in kids:
        kg.wait_state(task_id, "cancelled")
    wait_until(lambda: not kg.agent_processes(children=True), "every agent to end")


def _at_a_terminal(kg: Kugetsu, args: list[str], answer: str) -> tuple[int, str]:
    """Run `kugetsu ARGS` with a pseudo-terminal as stdin and stdout; answer its question."""
    main, tty = pty.openpty()
    proc = subprocess.Popen(
        [PY, "-m", "kugetsu_tui", *args], stdin=tty, stdout=tty, stderr=subprocess.PIPE, env=kg.env
    )
    os.close(tty)
    seen = b""

    def read() -> bytes:
        nonlocal seen
        if select.select([main], [], [], 0.05)[0]:
            with contextlib.suppress(OSError):  # (the other side closed)
                seen += os.read(main, 4096)
        return seen

    try:
        wait_until(lambda: b"[y/N]" in read(), "the question")
        os.write(main, answer.encode() + b"\n")
        code = proc.wait(timeout=30)
        read()
    finally:
        os.close(main)
    return code, seen.decode(errors="replace")


def test_at_a_terminal_cancel_asks_and_takes_the_children_when_told_yes(kg: Kugetsu) -> None:
    parent, kids = _planner(kg)
    code, shown = _at_a_terminal(kg, ["cancel", str(parent)], "y")
    assert code == 0
    assert f"task {parent}'s 3 child tasks ({', '.join(map(str, kids))}) still queued or live" in shown
    for task_id in (parent, *kids):
        kg.wait_state(task_id, "cancelled")
    wait_until(lambda: not kg.agent_processes(children=True), "every agent to end")


def test_at_a_terminal_a_no_leaves_the_children_and_a_bad_id_asks_nothing(kg: Kugetsu) -> None:
    parent, kids = _planner(kg)
    code, _ = _at_a_terminal(kg, ["cancel", str(parent)], "n")
    assert code == 0
    kg.wait_state(parent, "cancelled")
    assert kg.task(kids[0])["state"] == "running"
    done = kg.cli("cancel", "999")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no task 999" in done.stderr
    assert kg.main("cancel", *map(str, kids))[0] == 0
    wait_until(lambda: not kg.agent_processes(children=True), "every agent to end")
