"""(5) Scale of the dashboard: with 10,000 queued, 50 live (sleeping agents) and 1,000
failed, the dashboard (`kugetsu tui`) in a real pseudo-terminal, in both of its modes:
attached to a headless supervisor, and running the supervisor itself. Time to first
paint, CPU over 30 s idle (read from /proc, outside the process), RSS, and the time from a
key press to the change on screen; medians over the rounds, and each round's idle CPU.

"First paint" is when the Queued pane's title with the full count has been drawn; a key
press is `?`, done when the help screen's text has been drawn.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import sqlite3
import struct
import subprocess
import termios
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from _lib import KUGETSU, emit, fresh_home, home_env, main_args, median, say, scratch, timed

ANSI = re.compile(
    rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>NOPc78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)"
)
COLUMNS, ROWS = 160, 48
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1]) * 1024
    return found


class Screen:
    """The dashboard's output as plain text (escape sequences removed), read from the pty."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.raw = b""

    def drain(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.raw += chunk

    def wait_for(self, pattern: bytes, timeout: float, since: int = 0) -> float | None:
        """Seconds until `pattern` shows in the text after byte `since` of the raw output."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if pattern in ANSI.sub(b"", self.raw[since:]):
                return time.monotonic() - start
            self.drain(0.005)
        return None


def fill(
    home: Path, work: Path, queued: int, live: int, failed: int, *, supervise: bool
) -> subprocess.Popen[bytes] | None:
    """Make the home's state: `failed` failed tasks, `live` sleeping agents (cap = live)
    and `queued` more waiting behind them. With supervise, a headless supervisor
    (--forever) runs the live ones, for a dashboard that attaches to it; without, the
    dashboard's own supervisor will."""
    env = home_env(home)
    fails = work / "fail.jsonl"
    fails.write_text(
        "".join(
            json.dumps({"prompt": f"failing {n}", "agent": "fail", "max_attempts": 1, "no_worktree": True})
            + "\n"
            for n in range(failed)
        )
    )
    timed([*KUGETSU, "add", "--from-file", str(fails)], env=env)
    # Every one of them fails, so this run exits 1 by design.
    subprocess.run([*KUGETSU, "run", "--headless"], env=env, stdout=subprocess.DEVNULL, check=False)
    sleepers = work / "sleep.jsonl"
    sleepers.write_text(
        "".join(
            json.dumps({"prompt": f"sleeping {n}", "no_worktree": True}) + "\n" for n in range(live + queued)
        )
    )
    timed([*KUGETSU, "add", "--from-file", str(sleepers)], env=env)
    if not supervise:
        return None
    supervisor = subprocess.Popen(
        [*KUGETSU, "run", "--headless", "--forever", "--stop-agents"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_live(home, live)
    return supervisor


def live_count(home: Path) -> int:
    """Live tasks, read from the store directly (a `kugetsu status` would cost the CPU
    that is being measured beside it)."""
    with closing(sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True, timeout=10)) as db:
        return int(
            db.execute(
                "SELECT count(*) FROM tasks WHERE state IN ('starting', 'running', 'paused')"
            ).fetchone()[0]
        )


def wait_live(home: Path, live: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live_count(home) >= live:
            return True
        time.sleep(0.2)
    return False


def end_agents(home: Path) -> None:
    """End the sleeping agents a hosting dashboard left running (to be re-adopted)."""
    with closing(sqlite3.connect(home / "state.db", timeout=10)) as db:
        pids = [
            p
            for (p,) in db.execute(
                "SELECT pid FROM tasks WHERE pid IS NOT NULL AND state IN ('running', 'paused')"
            )
        ]
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def open_dashboard(home: Path) -> tuple[subprocess.Popen[bytes], Screen]:
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**home_env(home), "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    proc = subprocess.Popen(
        [*KUGETSU, "tui"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    return proc, Screen(controller)


def one_round(home: Path, queued: int, live: int, idle: float) -> dict[str, Any]:
    """Open the dashboard, wait for its first paint (and the live agents), measure its CPU
    from outside over `idle` seconds, then three `?` presses; quit it."""
    start = time.monotonic()
    proc, screen = open_dashboard(home)
    presses: list[float] = []
    try:
        painted = screen.wait_for(f"Queued {queued}".encode(), 30)
        first_paint = (time.monotonic() - start) if painted is not None else None
        wait_live(home, live)  # (a hosting dashboard's supervisor admits or re-adopts them)
        screen.drain(2.0)  # let it settle before measuring idle
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        end = t0 + idle
        while time.monotonic() < end:
            screen.drain(end - time.monotonic())
        cpu_share = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        mem = memory(proc.pid)
        for _ in range(3):
            mark = len(screen.raw)
            os.write(screen.fd, b"?")
            took = screen.wait_for(b"pause / resume the selected task", 10, since=mark)
            if took is not None:
                presses.append(took)
            os.write(screen.fd, b"\x1b")  # close the help screen
            screen.drain(0.5)
    finally:
        os.write(screen.fd, b"q")
        # With agents live it asks first (they keep running either way).
        screen.wait_for(b"Quit?", 5, since=len(screen.raw))
        os.write(screen.fd, b"y")
        try:
            # Read on while it quits: a full pseudo-terminal would hold up its last writes.
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                screen.drain(0.05)
            proc.wait(0.1)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(screen.fd)
    return {
        "first_paint_s": first_paint,
        "idle_cpu_percent": cpu_share * 100,
        "rss_mib": mem.get("VmRSS", 0) / 2**20,
        "peak_rss_mib": mem.get("VmHWM", 0) / 2**20,
        "key_presses_ms": [p * 1000 for p in presses],
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, and each round's idle CPU (the spread)."""
    paints = [r["first_paint_s"] for r in rounds if r["first_paint_s"] is not None]
    presses = [p for r in rounds for p in r["key_presses_ms"]]
    cpu = [r["idle_cpu_percent"] for r in rounds]
    return {
        "first_paint_s": median(paints) if paints else None,
        "idle_cpu_percent": median(cpu),
        "idle_cpu_rounds": cpu,
        "rss_mib": median([r["rss_mib"] for r in rounds]),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in rounds),
        "key_ms": median(presses) if presses else None,
        "key_presses_ms": presses,
    }


MODES = {
    "attached": "attached to a headless supervisor",
    "hosting": "running the supervisor itself",
}


def main() -> None:
    args = main_args(__doc__ or "")
    queued, live, failed = (2000, 20, 200) if args.quick else (10_000, 50, 1000)
    idle = 5.0 if args.quick else 30.0
    say(f"dashboard: {queued} queued, {live} live, {failed} failed; {idle:.0f} s idle, {args.rounds} rounds")
    modes: dict[str, dict[str, Any]] = {}
    for mode, label in MODES.items():
        with scratch("dashboard") as work:
            # `sleep` holds a few MiB: said so, or the memory guard would admit by a coding
            # agent's estimate and hold most of the 50 back.
            home = fresh_home(
                work, live, {"sleep": ["sleep", "600"], "fail": ["false"]}, "sleep", est_rss="16MiB"
            )
            supervisor = fill(home, work, queued, live, failed, supervise=mode == "attached")
            rounds = []
            try:
                for n in range(args.rounds):
                    rounds.append(one_round(home, queued, live, idle))
                    say(
                        f"  {mode} round {n + 1}/{args.rounds}: idle CPU {rounds[-1]['idle_cpu_percent']:.1f}%"
                    )
            finally:
                if supervisor is not None:
                    supervisor.send_signal(signal.SIGTERM)
                    try:
                        supervisor.wait(30)
                    except subprocess.TimeoutExpired:
                        supervisor.kill()
                end_agents(home)
        figures = modes[mode] = {"label": label, **summary(rounds)}
        spread = ", ".join(f"{c:.1f}" for c in figures["idle_cpu_rounds"])
        paint = figures["first_paint_s"]
        say(f"  {mode}: {label}")
        say(f"    first paint    {paint:.2f} s" if paint is not None else "    first paint    never seen")
        say(
            f"    idle CPU       {figures['idle_cpu_percent']:.1f}% of one core over {idle:.0f} s (rounds: {spread})"
        )
        say(f"    RSS            {figures['rss_mib']:.0f} MiB (peak {figures['peak_rss_mib']:.0f} MiB)")
        key = figures["key_ms"]
        say(f"    key to screen  {key:.0f} ms" if key is not None else "    key to screen  never seen")
    emit(
        args,
        "dashboard",
        {
            "queued": queued,
            "live": live,
            "failed": failed,
            "idle_s": idle,
            "rounds": args.rounds,
            "modes": modes,
        },
    )


if __name__ == "__main__":
    main()
