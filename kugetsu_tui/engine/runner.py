"""Spawn, signal and reap agent processes.

Each agent runs under a tiny `sh` wrapper in a session (and process group) of its own.
The wrapper waits for the agent and writes its exit status to `runs/<id>/exit`,
so a supervisor that restarts after a crash learns how agents that ended while it was
away fared. That file is read only once the wrapper is gone, so it is written in place
with one small write: a temp file and `mv` would cost a second process per task.
The wrapper is `sh`, not Python, and uses only shell builtins: it runs once per task,
and an interpreter start would cost more than the rest of dispatch. It also opens the
task's log itself, so the supervisor does not wait for a file to be made per spawn.

This module never decides what an exit means; the supervisor does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import select
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# $1 run dir, $2 working dir, $3 attempt number, $4 the agent's umask, then its argv.
# The log is made 0600 and appended to; a log that cannot be opened ends it with 125.
# The agent is the wrapper's foreground child; its status goes to exit (builtins only).
# A file that cannot be written (a full disk leaves it empty) is said so in the log; an
# exit file that exists at all says the agent ran to its end.
# The umask is tight only while the wrapper makes its files, so the agent's are as usual.
WRAPPER = r"""
run=$1; dir=$2; attempt=$3; mask=$4; shift 4
umask 077
command exec >>"$run/log" 2>&1 || exit 125
umask "$mask"
[ "$attempt" -gt 1 ] && printf '\n--- kugetsu: attempt %s ---\n' "$attempt"
cd -- "$dir" || exit 126
"$@"
code=$?
umask 077
printf '%s\n' "$code" 2>/dev/null > "$run/exit" ||
  printf '\n--- kugetsu: the agent exited with %s; its exit file could not be written ---\n' "$code"
exit "$code"
"""

SH = shutil.which("sh") or "/bin/sh"
# (program, PATH) -> where it was found. A PATH search stats every folder in PATH;
# checking the one file found last time is a single access() per spawn.
_FOUND: dict[tuple[str, str | None], str] = {}


class SpawnError(Exception):
    """The agent could not be started; the message says why, for the task's reason."""


@dataclass(frozen=True, slots=True)
class Spawned:
    pid: int
    started: float | None  # the process's start time, to tell it from a recycled pid


def substitute(command: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Replace `{prompt}`, `{task_id}` and `{worktree}` inside argv elements.

    Each value lands inside the one element that names it, so a prompt is always one
    argv element (or part of one), never split, never seen by a shell."""
    # One pass over the command's own text: a value that itself reads like a placeholder
    # (a prompt mentioning "{task_id}") is never substituted again.
    names = "|".join(re.escape(name) for name in values)
    pattern = re.compile(r"\{(" + names + r")\}")
    return [pattern.sub(lambda m: values[m.group(1)], part) if names else part for part in command]


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    run_dir: Path,
    attempt: int,
    env: Mapping[str, str],
    stdin: Path | None = None,
) -> Spawned:
    """Start argv under the wrapper in a new session; stdout+stderr append to run_dir/log
    (opened by the wrapper: until then they go to /dev/null).

    stdin is /dev/null unless a file is given (the prompt, for prompt_via = "stdin")."""
    program = argv[0]
    if os.sep not in program and not on_path(program, env.get("PATH")):
        raise SpawnError(f"agent command {program!r} not found on PATH")
    mask = f"{process_umask():03o}"
    try:
        pid = os.posix_spawn(
            SH,
            [SH, "-c", WRAPPER, "kugetsu-agent", str(run_dir), str(cwd), str(attempt), mask, *argv],
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, str(stdin or os.devnull), os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    except OSError as err:
        raise SpawnError(f"cannot start {program!r}: {err.strerror}") from None
    # When posix_spawn returns the child has started, so its start time (in the kernel's
    # clock ticks since boot, as /proc/<pid>/stat says it) is at most this. Reading /proc
    # instead would wait for the new process to finish exec: under load, longer than the
    # spawn itself.
    started = float(math.floor(time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS))
    return Spawned(pid, started)


_UMASK: list[int] = []


def process_umask() -> int:
    """This process's umask (what the agent gets), read once without changing it: setting
    it to read it back would race threads that create files meanwhile."""
    if not _UMASK:
        try:
            with open("/proc/self/status") as f:
                mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
        except (OSError, StopIteration, ValueError):
            mask = os.umask(0o077)
            os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]


def on_path(program: str, path: str | None) -> bool:
    """Whether `program` is an executable on `path`, as shutil.which decides."""
    key = (program, path)
    found = _FOUND.get(key)
    if found is not None and os.path.isfile(found) and os.access(found, os.X_OK):
        return True
    found = shutil.which(program, path=path)
    if found is None:
        _FOUND.pop(key, None)
        return False
    _FOUND[key] = found
    return True


def _stat(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), float(fields[19])


def start_time(pid: int) -> float | None:
    """The process's start time in clock ticks since boot (from /proc), or None if gone."""
    found = _stat(pid)
    return found[1] if found else None


def _alive_start(pid: int) -> float | None:
    """The start time of a process that is alive (not a zombie), else None."""
    found = _stat(pid)
    return found[1] if found and found[0] not in ("Z", "X") else None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def is_same_process(pid: int, started: float | None) -> bool:
    """True if pid is alive and is the very process that started at `started`."""
    now_started = _alive_start(pid)
    if now_started is None:
        return False
    return started is None or same_start(started, now_started)


def same_start(recorded: float, found: float) -> bool:
    """Does a start time read from /proc match the one recorded at the spawn? The spawn
    reads the clock just after the child started: the child began at most then, and (a
    recycled pid needs the whole pid space to wrap around first) not a second before."""
    return recorded - CLOCK_TICKS <= found <= recorded + 1


def read_exit_file(run_dir: Path) -> int | None:
    try:
        text = (run_dir / "exit").read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def exit_file_time(run_dir: Path) -> float | None:
    """When the wrapper wrote the exit file (the agent's end, wall clock), None if none."""
    try:
        return os.stat(run_dir / "exit").st_mtime
    except OSError:
        return None


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send sig to the whole process group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def group_alive(pgid: int) -> bool:
    """True while a process of the group still runs. Zombies do not count: an adopted
    agent's wrapper is not our child, and where nobody reaps orphans (a container whose
    PID 1 is not an init) it would otherwise keep its group "alive" forever."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _group_has_living_member(pgid)


def _group_has_living_member(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # cannot tell: assume it lives (fail closed)
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # After the command name (which may hold spaces): state, ppid, pgrp, ...
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def reap(pid: int) -> int | None:
    """Collect our child's status without blocking: its exit code (-N for signal N),
    or None if it has not ended or is not our child."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when pid exits (child or not), or None if gone."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def pidfd_exited(pidfd: int) -> bool:
    """True if the process behind pidfd has ended (its pidfd is readable); never waits."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)


def log_tail(path: Path, size: int = 65536) -> str:
    """The last `size` bytes of a log as text ('' if there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - size, 0))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def write_private(path: Path, text: str) -> Path:
    """Write text (byte-exact, even if it is not valid UTF-8) to a 0600 file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(text.encode("utf-8", "surrogateescape"))
    return path


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
    me = os.getpid()
    markers = {f"{MARKER}={marker}".encode() for marker, _, _ in attempts}
    # A process older than every one of these attempts is none of theirs: its environment
    # is not read (a read briefly holds up the process it reads).
    starts = [started for _, _, started in attempts if started is not None]
    oldest = min(starts) - CLOCK_TICKS if starts and len(starts) == len(attempts) else 0.0
    sessions = set()
    for _, pid, started in attempts:
        leader = _alive_start(pid) if pid > 0 else -1.0
        if pid > 0 and (leader is None or (started is not None and same_start(started, leader))):
            sessions.add(pid)
    found = []
    for name in _proc_entries():
        pid = int(name)
        if pid == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
            fields = data[data.rindex(b")") + 2 :].split()
            if fields[0] in (b"Z", b"X"):
                continue
            if int(fields[3]) in sessions:
                found.append(pid)
                continue
            if float(fields[19]) < oldest:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if markers and MARKER.encode() in env and markers.intersection(env.split(b"\0")):
            found.append(pid)
    return found


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


def cap_log(path: Path, max_bytes: int) -> bool:
    """Keep a chatty agent from filling the disk: past max_bytes, keep the newest half.

    The agent appends (O_APPEND), so after the cut its writes go on at the new end."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return False
    if max_bytes <= 0 or size <= max_bytes:
        return False
    keep = max_bytes // 2
    with open(path, "r+b") as f:
        f.seek(size - keep)
        # To the end, not `keep` bytes: what the agent appended since the stat is the newest
        # output, and would be cut off by the truncate below.
        tail = f.read()
        f.seek(0)
        note = f"--- kugetsu: {size - keep} bytes of older output cut (max_log) ---\n".encode()
        f.write(note + tail)
        f.truncate()
    return True
