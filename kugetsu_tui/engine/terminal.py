"""Terminal agents: an agent with `terminal = true` runs in a pseudo-terminal inside a
detached tmux session, on a tmux server of the home's own (its socket in the home, which
is 0700), so a person can attach to it, type into it, and see when it waits for them.

The pane's process is the same sh wrapper every agent runs under (runner.WRAPPER, but
with the terminal as its output): tmux makes it the leader of a session of its own, so its
pid is the attempt's process group, exactly as for an agent spawned directly, and cancel,
pause, timeout and re-adoption treat it the same. Its output is mirrored into the task's
log by `pipe-pane`. The server ends by itself when its last session does (exit-empty).

tmux is needed only for terminal agents; without it their spawn fails, saying so.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from kugetsu_tui.engine import runner
from kugetsu_tui.engine.runner import Spawned, SpawnError

SOCKET = "tmux.sock"  # in the home
WIDTH, HEIGHT = 200, 50
TMUX_TIMEOUT = 10.0
# The last line of a screen that asks something: a question, a yes/no, a shell-like prompt.
PROMPT = re.compile(
    r"(\?|\[[yY]/[nN]\]|\([yY]/[nN]\)|\[[yY]es/[nN]o\]|>|Press Enter.*|Do you want.*)\s*$",
)


def socket_path(home: Path) -> Path:
    return home / SOCKET


def session_name(task_id: int) -> str:
    return f"kugetsu-{task_id}"


def tmux_program() -> str | None:
    return shutil.which("tmux")


def _server_options(home: Path) -> list[str]:
    # No person's ~/.tmux.conf: an option there (remain-on-exit, exit-empty off, a
    # default-command) would change how an agent's pane runs and ends.
    return ["-f", os.devnull, "-S", str(socket_path(home))]


def _tmux(home: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    program = tmux_program()
    if program is None:
        raise SpawnError("terminal = true needs tmux, which is not installed (not found on PATH)")
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    return subprocess.run(
        [program, *_server_options(home), *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=TMUX_TIMEOUT,
        check=check,
    )


def spawn(
    home: Path,
    task_id: int,
    argv: Sequence[str],
    *,
    cwd: Path,
    run_dir: Path,
    attempt: int,
    env: Mapping[str, str],
    stdin: Path | None = None,
) -> Spawned:
    """Start argv under the wrapper in a new detached tmux session named for the task; its
    output is mirrored (appended) to run_dir/log. The pid is the wrapper's, as runner.spawn's."""
    program = argv[0]
    if os.sep not in program and not runner.on_path(program, env.get("PATH")):
        raise SpawnError(f"agent command {program!r} not found on PATH")
    if tmux_program() is None:
        raise SpawnError("terminal = true needs tmux, which is not installed (not found on PATH)")
    log = run_dir / "log"
    # Made here, private, before the pipe (run by the tmux server, with its umask) appends.
    os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
    mask = f"{runner.process_umask():03o}"
    # The pane starts this script, which becomes the wrapper (exec keeps the pid) with the
    # agent's environment only: none of the tmux server's. It is a file, not tmux's
    # arguments, because a tmux command is limited in size and a prompt is not.
    variables = [f"{k}={v}" for k, v in env.items() if k != "TERM"]
    wrapper = [runner.SH, "-c", runner.TERMINAL_WRAPPER, "kugetsu-agent", str(run_dir), str(cwd)]
    words = ["exec", "env", "-i", 'TERM="${TERM:-screen}"', *map(shlex.quote, variables)]
    words += [shlex.quote(w) for w in [*wrapper, str(attempt), mask, *argv]]
    words += ["<", shlex.quote(str(stdin))] if stdin is not None else []
    launcher = runner.write_private(run_dir / "terminal-launch", " ".join(words) + "\n")
    name = session_name(task_id)
    pipe = f"umask 077; exec cat >> {shlex.quote(str(log))}"
    try:
        done = _tmux(
            home,
            "new-session", "-d", "-P", "-F", "#{pane_pid}", "-s", name,
            "-x", str(WIDTH), "-y", str(HEIGHT), "--", runner.SH, str(launcher),
            ";", "pipe-pane", "-o", "-t", name, pipe,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SpawnError(f"cannot start tmux for a terminal agent: {err}") from None
    first = done.stdout.strip().splitlines()[:1]
    if done.returncode != 0 or not first or not first[0].isdigit():
        why = " ".join(done.stderr.split()) or f"tmux exited with {done.returncode}"
        raise SpawnError(f"cannot start a tmux session for a terminal agent: {why}")
    pid = int(first[0])
    return Spawned(pid, runner.start_time(pid))


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()  # state, ppid, pgrp, session, ...


def is_pane(pid: int) -> bool:
    """Whether pid is a process a tmux server started (a terminal agent's wrapper)."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    try:
        with open(f"/proc/{int(fields[1])}/comm", "rb") as f:
            return f.read().startswith(b"tmux")
    except OSError:
        return False


def stop_all_but_leader(pgid: int) -> None:
    """SIGSTOP every process of the group but its leader, the wrapper. tmux continues a
    pane whose process stops, so the wrapper (which only waits) runs on while its agent and
    the agent's children are stopped. A process forked while this runs is caught by the
    next pass."""
    stopped: set[int] = set()
    for _ in range(3):
        members = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in stopped or int(name) == pgid:
                continue
            fields = _stat_fields(int(name))
            if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                members.append(int(name))
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                continue
            stopped.add(pid)


def is_live(home: Path, task_id: int) -> bool:
    """Whether the task's terminal session exists."""
    if tmux_program() is None or not socket_path(home).exists():
        return False
    try:
        return _tmux(home, "has-session", "-t", f"={session_name(task_id)}").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def capture(home: Path, task_id: int) -> str | None:
    """The visible screen of the task's terminal, None if it has none."""
    if tmux_program() is None or not socket_path(home).exists():
        return None
    try:
        done = _tmux(home, "capture-pane", "-p", "-t", f"={session_name(task_id)}:")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def send(home: Path, task_id: int, text: str) -> bool:
    """Type text (literally, never as key names) and Enter into the task's terminal."""
    target = f"={session_name(task_id)}:"
    try:
        done = _tmux(
            home, "send-keys", "-t", target, "-l", "--", text, ";", "send-keys", "-t", target, "Enter"
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def attach_argv(home: Path, task_id: int) -> list[str]:
    return [tmux_program() or "tmux", *_server_options(home), "attach", "-t", f"={session_name(task_id)}"]


def last_line(screen: str) -> str | None:
    """The screen's last non-blank line (trailing blanks cut), or None for a blank screen."""
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    return lines[-1] if lines else None


def prompt_line(screen: str, patterns: Sequence[str] = ()) -> str | None:
    """The screen's last non-blank line if it reads as a question waiting for an answer
    (PROMPT, or one of the agent's own `patterns`, searched case-insensitively)."""
    last = last_line(screen)
    if last is None:
        return None
    if PROMPT.search(last) or any(re.search(p, last, re.IGNORECASE) for p in patterns):
        return last.strip()
    return None
