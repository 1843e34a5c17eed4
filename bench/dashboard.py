"""(5) Scale of the dashboard: with 10,000 queued, 50 live (sleeping agents) and 1,000
failed, the dashboard (`kugetsu tui`, attached to a headless supervisor) in a real
pseudo-terminal: time to first paint, CPU over 30 s idle, RSS, and the time from a key
press to the change on screen.

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
import struct
import subprocess
import termios
import time
from pathlib import Path

from _lib import KUGETSU, emit, fresh_home, home_env, main_args, say, scratch, timed

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


def fill(home: Path, work: Path, queued: int, live: int, failed: int) -> subprocess.Popen[bytes]:
    """Make the home's state: `failed` failed tasks, `live` sleeping agents under a headless
    supervisor (--forever, cap = live), and `queued` more waiting behind them."""
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
    supervisor = subprocess.Popen(
        [*KUGETSU, "run", "--headless", "--forever", "--stop-agents"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = json.loads(
            subprocess.run([*KUGETSU, "status", "--json"], env=env, capture_output=True).stdout
        )
        if status["live"] >= live:
            break
        time.sleep(0.2)
    return supervisor


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


def main() -> None:
    args = main_args(__doc__ or "")
    queued, live, failed = (2000, 20, 200) if args.quick else (10_000, 50, 1000)
    idle = 5.0 if args.quick else 30.0
    say(f"dashboard: {queued} queued, {live} live, {failed} failed; {idle:.0f} s idle")
    with scratch("dashboard") as work:
        home = fresh_home(work, live, {"sleep": ["sleep", "600"], "fail": ["false"]}, "sleep")
        supervisor = fill(home, work, queued, live, failed)
        try:
            start = time.monotonic()
            proc, screen = open_dashboard(home)
            try:
                painted = screen.wait_for(f"Queued {queued}".encode(), 30)
                first_paint = (time.monotonic() - start) if painted is not None else None
                screen.drain(2.0)  # let it settle before measuring idle
                cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
                end = t0 + idle
                while time.monotonic() < end:
                    screen.drain(end - time.monotonic())
                cpu_share = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
                mem = memory(proc.pid)
                presses = []
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
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                os.close(screen.fd)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(30)
            except subprocess.TimeoutExpired:
                supervisor.kill()
    key_ms = sorted(presses)[len(presses) // 2] * 1000 if presses else None
    say(f"  first paint    {first_paint:.2f} s" if first_paint is not None else "  first paint    never seen")
    say(f"  idle CPU       {cpu_share * 100:.1f}% of one core over {idle:.0f} s")
    say(
        f"  RSS            {mem.get('VmRSS', 0) / 2**20:.0f} MiB (peak {mem.get('VmHWM', 0) / 2**20:.0f} MiB)"
    )
    say(f"  key to screen  {key_ms:.0f} ms" if key_ms is not None else "  key to screen  never seen")
    emit(
        args,
        "dashboard",
        {
            "queued": queued,
            "live": live,
            "failed": failed,
            "idle_s": idle,
            "first_paint_s": first_paint,
            "idle_cpu_percent": cpu_share * 100,
            "rss_mib": mem.get("VmRSS", 0) / 2**20,
            "peak_rss_mib": mem.get("VmHWM", 0) / 2**20,
            "key_ms": key_ms,
            "key_presses_ms": [p * 1000 for p in presses],
        },
    )


if __name__ == "__main__":
    main()
