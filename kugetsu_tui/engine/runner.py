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

import math
import os
import re
import select
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# $1 run dir, $2 working dir, $3 attempt number, $4 the agent's umask, then its argv.
# Each attempt's header and footer in the log are the supervisor's (append_to_log).
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
cd -- "$dir" || exit 126
"$@"
code=$?
umask 077
printf '%s\n' "$code" 2>/dev/null > "$run/exit" ||
  printf '\n--- kugetsu: the agent exited with %s; its exit file could not be written ---\n' "$code"
exit "$code"
"""

# A terminal agent's wrapper (engine/terminal.py): its output is the terminal, which tmux
# mirrors into the log; the log is only checked to be writable.
TERMINAL_WRAPPER = WRAPPER.replace('command exec >>"$run/log" 2>&1', 'command : >>"$run/log"')
assert TERMINAL_WRAPPER != WRAPPER

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
    args = [SH, "-c", WRAPPER, "kugetsu-agent", str(run_dir), str(cwd), str(attempt), mask, *argv]
    try:
        pid = _posix_spawn(args, env, str(stdin or os.devnull))
    except OSError as err:
        raise SpawnError(f"cannot start {program!r}: {err.strerror}") from None
    except ValueError:
        raise SpawnError(f"cannot start {program!r}: an argument holds a NUL byte") from None
    # When posix_spawn returns the child has started, so its start time (in the kernel's
    # clock ticks since boot, as /proc/<pid>/stat says it) is at most this. Reading /proc
    # instead would wait for the new process to finish exec: under load, longer than the
    # spawn itself.
    started = float(math.floor(time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS))
    return Spawned(pid, started)


def _posix_spawn(args: list[str], env: Mapping[str, str], stdin: str) -> int:
    """posix_spawn args[0] with args in a new session; fd 0 from stdin, 1 and 2 to /dev/null.

    libc's own posix_spawn where it can be reached: it is called without the GIL, so a
    spawn made from a thread lets the event loop go on while the new process is made (the
    caller waits until the child has exec'd: 0.15 ms idle, milliseconds under load).
    Python 3.11's os.posix_spawn holds the GIL for all of that."""
    libc = _libc_spawn()
    if libc is None:
        return os.posix_spawn(
            args[0],
            args,
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    return libc.spawn(args, env, stdin)


_LIBC: list[_LibcSpawn | None] = []


def _libc_spawn() -> _LibcSpawn | None:
    if not _LIBC:
        try:
            _LIBC.append(_LibcSpawn() if sys.platform == "linux" else None)
        except (OSError, AttributeError):  # not glibc/musl, or no posix_spawn there
            _LIBC.append(None)
    return _LIBC[0]


class _LibcSpawn:
    """libc's posix_spawn through ctypes, with the file actions and flags spawn() needs."""

    SETSID = 0x80  # POSIX_SPAWN_SETSID in glibc (>= 2.26) and musl
    # sizeof(posix_spawn_file_actions_t) is 80 and sizeof(posix_spawnattr_t) 336 on glibc
    # x86_64; room to spare for any libc.
    ACTIONS_SIZE = 512
    ATTR_SIZE = 1024

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        self.posix_spawn = libc.posix_spawn
        self.posix_spawn.argtypes = [p, s, p, p, p, p]
        self.posix_spawn.restype = i
        self.actions_init = libc.posix_spawn_file_actions_init
        self.actions_destroy = libc.posix_spawn_file_actions_destroy
        self.add_open = libc.posix_spawn_file_actions_addopen
        self.add_open.argtypes = [p, i, s, i, ctypes.c_uint]
        self.add_dup2 = libc.posix_spawn_file_actions_adddup2
        self.add_dup2.argtypes = [p, i, i]
        self.attr_init = libc.posix_spawnattr_init
        self.attr_destroy = libc.posix_spawnattr_destroy
        self.set_flags = libc.posix_spawnattr_setflags
        self.set_flags.argtypes = [p, ctypes.c_short]
        for call in (self.actions_init, self.actions_destroy, self.attr_init, self.attr_destroy):
            call.argtypes = [p]
        for call in (self.actions_init, self.actions_destroy, self.add_open, self.add_dup2):
            call.restype = i
        for call in (self.attr_init, self.attr_destroy, self.set_flags):
            call.restype = i

    def spawn(self, args: Sequence[str], env: Mapping[str, str], stdin: str) -> int:
        ctypes = self.ctypes
        argv = [_c_string(a) for a in args]
        envp = [_c_string(k) + b"=" + _c_string(v) for k, v in env.items()]
        argv_array = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
        env_array = (ctypes.c_char_p * (len(envp) + 1))(*envp, None)
        actions = ctypes.create_string_buffer(self.ACTIONS_SIZE)
        attr = ctypes.create_string_buffer(self.ATTR_SIZE)
        pid = ctypes.c_int(0)
        _check(self.actions_init(actions))
        try:
            _check(self.attr_init(attr))
            try:
                _check(self.add_open(actions, 0, _c_string(stdin), os.O_RDONLY, 0))
                _check(self.add_open(actions, 1, os.fsencode(os.devnull), os.O_WRONLY, 0))
                _check(self.add_dup2(actions, 1, 2))
                _check(self.set_flags(attr, self.SETSID))
                _check(self.posix_spawn(ctypes.byref(pid), argv[0], actions, attr, argv_array, env_array))
            finally:
                self.attr_destroy(attr)
        finally:
            self.actions_destroy(actions)
        return int(pid.value)


def _c_string(text: str) -> bytes:
    data = os.fsencode(text)
    if b"\0" in data:
        raise ValueError("embedded null byte")  # as os.posix_spawn says it
    return data


def _check(code: int) -> None:
    """libc's posix_spawn family returns an error number instead of setting errno."""
    if code != 0:
        raise OSError(code, os.strerror(code))


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


def append_to_log(path: Path, text: str) -> None:
    """Append a line of ours to a log (made 0600 if it is not there yet) in one write, on a
    line of its own. Best effort: a log that cannot be written (a full disk) goes without."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text  # the agent's last line had no end
        os.write(fd, text.encode("utf-8", "surrogateescape"))
    except OSError:
        pass
    finally:
        os.close(fd)


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
