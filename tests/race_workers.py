"""Worker processes for the race tests: each waits at a barrier file, then hammers one home.

    race_workers.py admit DB BARRIER CAP LIMIT   admit, run and settle tasks until none is left
    race_workers.py add HOME BARRIER WORKDIR N TAG  `kugetsu add` N times, one transaction each
    race_workers.py supervise HOME BARRIER       `kugetsu run --headless --forever`
    race_workers.py subreaper CMD...             run CMD as a child subreaper that never reaps,
                                                 like a container's PID 1 without an init

Each prints one JSON line on stdout with what it did.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path


def wait_for(barrier: str) -> None:
    """Say this worker is ready (see tests.helpers.harness.open_barrier), then wait."""
    Path(f"{barrier}.ready-{os.getpid()}").touch()
    while not os.path.exists(barrier):
        time.sleep(0.001)


def admit(db: str, barrier: str, cap: int, limit: int | None) -> None:
    from kugetsu_tui.engine.model import EventType, State
    from kugetsu_tui.engine.store import Store

    store = Store(Path(db))
    rng = random.Random(os.getpid())
    wait_for(barrier)
    admitted: list[int] = []
    while True:
        got = store.admit(cap, time.time(), limit=limit)
        if not got:
            if store.runnable_count() == 0:
                break
            time.sleep(rng.random() * 0.002)
            continue
        for task in got:
            admitted.append(task.id)
            store.transition(
                task.id, State.RUNNING, now=time.time(), event=EventType.TASK_STARTED, expect={State.STARTING}
            )
        time.sleep(rng.random() * 0.004)  # hold the slots a moment, as an agent would
        for task in got:
            store.transition(
                task.id,
                State.SUCCEEDED,
                now=time.time(),
                event=EventType.TASK_COMPLETED,
                expect={State.RUNNING},
            )
    print(json.dumps({"pid": os.getpid(), "admitted": admitted}))


def add(home: str, barrier: str, workdir: str, n: int, tag: str) -> None:
    from kugetsu_tui import cli

    wait_for(barrier)
    ids: list[int] = []
    for i in range(n):
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli.main(
                ["--home", home, "add", "--force", "--no-worktree", "--repo", workdir, f"{tag} task {i}"]
            )
        if code != 0:
            print(json.dumps({"error": code}))
            sys.exit(code)
        ids.append(int(out.getvalue()))
    print(json.dumps({"tag": tag, "ids": ids}))


def supervise(home: str, barrier: str) -> None:
    from kugetsu_tui import cli

    wait_for(barrier)
    sys.exit(cli.main(["--home", home, "run", "--headless", "--forever"]))


def subreaper(command: list[str]) -> None:
    """Orphans of CMD's tree become our children, and we never wait for them: when they
    end they stay zombies, as under a PID 1 that does not reap."""
    import ctypes
    import signal
    import subprocess

    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
    subprocess.Popen(command)
    signal.pause()


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    if kind == "admit":
        admit(rest[0], rest[1], int(rest[2]), int(rest[3]) or None)
    elif kind == "add":
        add(rest[0], rest[1], rest[2], int(rest[3]), rest[4])
    elif kind == "supervise":
        supervise(rest[0], rest[1])
    elif kind == "subreaper":
        subreaper(rest)
    else:
        sys.exit(f"unknown worker {kind!r}")
