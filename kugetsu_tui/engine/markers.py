"""Finding an attempt's processes after the fact: the run marker every process of an
attempt inherits, what it left behind when it settles, the wrapper of an attempt whose pid
was never stored, and a worktree setup orphaned by a supervisor that died. Reads the
process table (psutil, /proc): never on the hot path of a spawn."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from kugetsu_tui.engine.runner import (
    CLOCK_TICKS,
    Spawned,
    _alive_start,
    same_start,
    signal_group,
    start_time,
    write_private,
)

# Every process of an attempt inherits this marker: `<home id>:<task id>:<attempt>:<when
# it was admitted>` (a requeued task counts its attempts from 1 again: the time tells its
# runs apart). It finds what left the attempt's process group, and the wrapper of an
# attempt whose pid was never stored, without telling an agent where the home is.
MARKER = "KUGETSU_RUN"


@functools.cache
def home_id(home: Path) -> str:
    """A name for the home that does not say where it is (a hash of its resolved path, so
    `--home ./h` and `--home /abs/h` name the same home)."""
    return hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:16]


def run_marker(home: Path, task_id: int, attempt: int, admitted_at: float | None) -> str:
    admitted = "-" if admitted_at is None else f"{admitted_at:.6f}"
    return f"{home_id(home)}:{task_id}:{attempt}:{admitted}"


def _marker_of(env: Mapping[str, str]) -> list[str]:
    return env.get(MARKER, "").split(":")


def stray_processes(home: Path, task_id: int, pgid: int) -> list[int]:
    """Processes of this task that left its process group (found by the marker every
    agent inherits). Reads every process's environment: call it only when ending a task,
    not on the hot path."""
    import psutil

    found = []
    want = [home_id(home), str(task_id)]
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                continue  # the group signal reaches it
            marker = _marker_of(proc.environ())
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
        if marker[:2] == want:
            found.append(proc.pid)
    return found


def leftover_processes(home: Path, attempts: Sequence[tuple[str, int, float | None]]) -> list[int]:
    """What these ended attempts, each (its marker, wrapper pid, the wrapper's start time),
    left alive: processes of the session its wrapper led, and processes with its marker.

    One pass over the process table for them all (it reads every process's environment:
    slow, for a thread). A session id is the pid of the wrapper that led it; while any
    process of that session lives the id cannot be given to a new process, so a session
    now led by a live process that is not the wrapper is a stranger's."""
    markers = {f"{MARKER}={marker}".encode() for marker, _, _ in attempts}
    # A process older than every one of these attempts is none of theirs: its environment
    # is not read (a read briefly holds up the process it reads).
    starts = [started for _, _, started in attempts if started is not None]
    oldest = min(starts) - CLOCK_TICKS if starts and len(starts) == len(attempts) else 0.0
    sessions = _sessions_led(attempts)
    me = os.getpid()
    return [
        int(name)
        for name in _proc_entries()
        if int(name) != me and _is_leftover(name, sessions, oldest, markers)
    ]


def _sessions_led(attempts: Sequence[tuple[str, int, float | None]]) -> set[int]:
    """The session ids that are still these wrappers' own (not reused by a stranger)."""
    sessions = set()
    for _, pid, started in attempts:
        if pid <= 0:
            continue
        leader = _alive_start(pid)
        if leader is None or (started is not None and same_start(started, leader)):
            sessions.add(pid)
    return sessions


def _is_leftover(name: str, sessions: set[int], oldest: float, markers: set[bytes]) -> bool:
    """Process `name` (a /proc entry) lives in one of `sessions` or carries one of `markers`."""
    try:
        with open(f"/proc/{name}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            return False
        if int(fields[3]) in sessions:
            return True
        if float(fields[19]) < oldest or not markers:
            return False
        with open(f"/proc/{name}/environ", "rb") as f:
            env = f.read()
    except (OSError, ValueError, IndexError):
        return False
    return MARKER.encode() in env and bool(markers.intersection(env.split(b"\0")))


def _proc_entries() -> list[str]:
    try:
        return [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def find_wrapper(home: Path, task_id: int, attempt: int, admitted_at: float | None) -> Spawned | None:
    """The wrapper of this task's attempt if it still runs, found by the marker in its
    environment: for an agent started just before its supervisor was killed, before the
    pid could be stored. Reads every process's environment: call it only at start-up."""
    import psutil

    want = run_marker(home, task_id, attempt, admitted_at).split(":")
    for proc in psutil.process_iter():
        try:
            # The wrapper leads a session of its own and is named by its $0.
            if os.getsid(proc.pid) != proc.pid or proc.cmdline()[3:4] != ["kugetsu-agent"]:
                continue
            marker = _marker_of(proc.environ())
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
        if marker != want:
            continue
        started = _alive_start(proc.pid)
        if started is not None:
            return Spawned(proc.pid, started)
    return None


SETUP_FILE = "setup-pid"  # in the run folder while a worktree setup runs: "pid start-time"


def note_setup(run_dir: Path, pid: int) -> None:
    """Record a running worktree setup (the leader of its own process group), so that a
    supervisor started after this one died can end it."""
    write_private(run_dir / SETUP_FILE, f"{pid} {start_time(pid) or ''}\n")


def setup_ended(run_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(run_dir / SETUP_FILE)


def end_orphaned_setup(run_dir: Path) -> int | None:
    """SIGKILL the process group of a setup recorded by note_setup whose supervisor died;
    its pid if there was one to end. A pid now led by another process is left alone."""
    try:
        pid_text, _, started_text = (run_dir / SETUP_FILE).read_text().partition(" ")
        pid, started = int(pid_text), float(started_text) if started_text.strip() else None
    except (OSError, ValueError):
        return None
    setup_ended(run_dir)
    leader = start_time(pid)
    if pid <= 1 or (leader is not None and (started is None or leader != started)):
        return None  # the setup's pid now names another process: not ours to signal
    # Its leader gone, a group of that id can still be only the setup's: a pid is not given
    # out again while a process group of that id has members.
    return pid if signal_group(pid, signal.SIGKILL) else None
