"""Run the user's hooks on events: the event's JSON on stdin, never on a command line.

Each hook runs in the background with a timeout; a hook that fails or hangs is reported as
a `hook_failed` event and never holds up admission. A hook with `debounce` gets one summary
event for everything that matched during that window ("5 succeeded, 1 failed") instead of
one run per event.

A hook must never block the loop, the worktree path or the supervisor's own memory:
hooks are plain processes watched from the loop (a pidfd for the exit, non-blocking pipes),
never a thread of the shared pool; at most MAX_RUNNING run at once; reading stops at the
timeout whoever still holds the pipe; only the last TAIL_BYTES of stderr are kept. When a
hook ends (or times out), what it started is ended too: its process group, descendants
seen while it ran, and processes that carry its marker in their environment (those that
left the group with setsid()). No hook's process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kugetsu_tui.engine.config import Hook
from kugetsu_tui.engine.messages import Event
from kugetsu_tui.engine.model import EventType, iso

SUMMARY_WORDS = {
    "task_completed": "succeeded",
    "task_error": "failed",
    "task_cancelled": "cancelled",
    "task_expired": "expired",
    "task_retrying": "retrying",
    "task_started": "started",
    "task_queued": "queued",
}

MARKER = "KUGETSU_HOOK"  # in every hook's environment: a token for that one run
TAIL_BYTES = 4096  # of a hook's stderr, for the failure's reason
MAX_RUNNING = 8  # hooks running at once; more wait their turn
# s between looks at a running hook's descendants: often at first (a child that escapes
# does so early), then rarely (each look reads the whole process table).
FIRST_SAMPLE, MAX_SAMPLE = 0.05, 1.0
EOF_GRACE = 0.2  # s to wait for the stderr pipe to close once everything of a hook is ended

# Process-table reads (descendants, markers) happen here, never on the loop and never in
# the pool that the supervisor's other blocking work (git worktrees) uses.
_scans = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kugetsu-hooks")


def summary_text(counts: Counter[EventType]) -> str:
    return ", ".join(f"{n} {SUMMARY_WORDS.get(kind, kind)}" for kind, n in counts.most_common())


class _Tail:
    """The last TAIL_BYTES of a stream: memory stays bounded whatever a hook writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * TAIL_BYTES:  # trim in batches, not on every chunk
            del self.data[:-TAIL_BYTES]

    def last_line(self) -> str:
        lines = bytes(self.data[-TAIL_BYTES:]).decode(errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else ""


def _descendants(pid: int) -> set[tuple[int, float]]:
    """(pid, start time) of pid's descendants now: a child that later leaves the group or
    the session is still known (by its start time, so a reused pid is never mistaken)."""
    import psutil

    found = set()
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                found.add((child.pid, child.create_time()))
    return found


def _end_leftovers(pgid: int, marker: str, seen: set[tuple[int, float]]) -> None:
    """SIGKILL everything a hook left: its process group, the descendants seen while it
    ran, and processes carrying its marker. (The hook itself is not collected yet, so its
    pid, the group's id, cannot have been reused.)"""
    import psutil

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    targets = set(seen)
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == marker:
                targets.add((proc.pid, proc.create_time()))
        except psutil.Error:
            continue
    for pid, started in targets:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == started:
                proc.kill()
        except psutil.Error:
            continue


async def run_hook(command: Sequence[str], payload: bytes, timeout: float) -> str | None:
    """Run one hook to the end, on the running loop. None, or why it failed.

    Returns within `timeout` (and a moment to end what is left), whatever the hook does:
    ignore stdin, flood stderr, leave a child holding the pipe, or hang."""
    loop = asyncio.get_running_loop()
    marker = uuid.uuid4().hex
    try:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, MARKER: marker},
        )
    except OSError as failure:
        return f"cannot start {command[0]!r}: {failure.strerror}"
    pipes = _Pipes(loop, proc, payload)
    try:
        timed_out = await _wait(loop, pipes, marker, timeout)
    finally:
        code = pipes.close()
    if timed_out:
        return f"timed out after {timeout:g}s (killed)"
    if code is None:
        return "did not end after SIGKILL"
    if code != 0:
        line = pipes.tail.last_line()
        return f"exit code {code}" + (f": {line}" if line else "")
    return None


async def _wait(loop: asyncio.AbstractEventLoop, pipes: _Pipes, marker: str, timeout: float) -> bool:
    """Until the hook exits or `timeout` passes (True), noting its descendants as it
    runs; then end whatever it left and let its stderr drain."""
    pid = pipes.proc.pid
    seen: set[tuple[int, float]] = set()
    timed_out = False
    deadline = loop.time() + timeout
    pause = FIRST_SAMPLE
    while not pipes.exited.is_set():
        left = deadline - loop.time()
        if left <= 0:
            timed_out = True
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pipes.exited.wait(), min(left, pause))
        if not pipes.exited.is_set():
            seen |= await loop.run_in_executor(_scans, _descendants, pid)
            pause = min(pause * 2, MAX_SAMPLE)
    # Whatever it left (or, at the timeout, all of it) is ended now, before reading on.
    await loop.run_in_executor(_scans, _end_leftovers, pid, marker, seen)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(pipes.exited.wait(), EOF_GRACE + 1.0)
    with contextlib.suppress(TimeoutError):  # the pipe closes once its holders are gone
        await asyncio.wait_for(pipes.eof.wait(), EOF_GRACE)
    return timed_out


class _Pipes:
    """A running hook's stdin, stderr and pidfd, watched on the loop: the event is written
    to stdin, the tail of stderr kept, the exit noticed."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], payload: bytes
    ) -> None:
        assert proc.stdin is not None and proc.stderr is not None
        self.loop, self.proc = loop, proc
        self.stdin_pipe = proc.stdin
        self.stdin, self.stderr = proc.stdin.fileno(), proc.stderr.fileno()
        os.set_blocking(self.stdin, False)
        os.set_blocking(self.stderr, False)
        self.tail = _Tail()
        self.exited, self.eof = asyncio.Event(), asyncio.Event()
        self.unsent = memoryview(payload)
        self.pidfd = os.pidfd_open(proc.pid)
        # Which descriptors are still registered with the loop: each is removed once, before
        # it is closed, so a reused descriptor number of someone else's is never touched.
        self.watched = {self.stdin, self.stderr, self.pidfd}
        loop.add_writer(self.stdin, self.send)
        loop.add_reader(self.stderr, self.receive)
        loop.add_reader(self.pidfd, self.ended)

    def unwatch(self, fd: int) -> None:
        if fd in self.watched:
            self.watched.discard(fd)
            if fd == self.stdin:
                self.loop.remove_writer(fd)
            else:
                self.loop.remove_reader(fd)

    def send(self) -> None:
        try:
            self.unsent = self.unsent[os.write(self.stdin, self.unsent[: 1 << 16]) :]
        except BlockingIOError:
            return
        except OSError:  # the hook closed its stdin (or exited): it does not want the rest
            self.unsent = self.unsent[:0]
        if not self.unsent:
            self.unwatch(self.stdin)
            self.stdin_pipe.close()  # EOF: the whole event was sent

    def receive(self) -> None:
        try:
            chunk = os.read(self.stderr, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self.tail.add(chunk)
        else:
            self.unwatch(self.stderr)
            self.eof.set()

    def ended(self) -> None:
        self.unwatch(self.pidfd)  # a pidfd stays readable: once is enough
        self.exited.set()

    def close(self) -> int | None:
        """Stop watching, close everything, collect the hook; its exit code (None if it
        would not end)."""
        if not self.exited.is_set():  # cancelled (the loop is closing): the hook goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for fd in list(self.watched):
            self.unwatch(fd)
        os.close(self.pidfd)
        for pipe in (self.proc.stdin, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return self.proc.poll()  # collects it: exited (or was killed) by now


class Hooks:
    """Matches events to hooks and runs them; owned by the supervisor's loop."""

    def __init__(
        self,
        hooks: Sequence[Hook],
        *,
        spawn: Callable[[Coroutine[None, None, None]], None],
        report: Callable[[dict[str, Any]], None],
        clock: Callable[[], float],
    ) -> None:
        self.hooks = list(hooks)
        self.spawn = spawn  # runs a coroutine in the background (the supervisor tracks it)
        self.report = report  # records a hook_failed event
        self.clock = clock
        self._pending: dict[int, list[Event]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._running: asyncio.Semaphore | None = None  # made on the loop, at first use

    def dispatch(self, events: Sequence[Event]) -> None:
        for n, hook in enumerate(self.hooks):
            matched = [e for e in events if e.type in hook.on and e.type != EventType.HOOK_FAILED]
            if not matched:
                continue
            if hook.debounce <= 0:
                for event in matched:
                    self._start(hook, event.to_json())
                continue
            self._pending.setdefault(n, []).extend(matched)
            if n not in self._timers:
                loop = asyncio.get_running_loop()
                self._timers[n] = loop.call_later(hook.debounce, self._flush, n)

    def flush_all(self) -> None:
        """Send every pending summary now (the supervisor is stopping)."""
        for n in list(self._timers):
            self._timers[n].cancel()
            self._flush(n)

    def _flush(self, n: int) -> None:
        self._timers.pop(n, None)
        events = self._pending.pop(n, [])
        if not events:
            return
        counts = Counter(e.type for e in events)
        self._start(
            self.hooks[n],
            {
                "type": "summary",
                "ts": iso(self.clock()),
                "count": len(events),
                "counts": dict(counts),
                "text": summary_text(counts),
                "task_ids": sorted({e.task_id for e in events if e.task_id is not None}),
                "events": [e.to_json() for e in events],
            },
        )

    def _start(self, hook: Hook, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode(errors="replace") + b"\n"

        async def run() -> None:
            if self._running is None:
                self._running = asyncio.Semaphore(MAX_RUNNING)
            async with self._running:
                error = await run_hook(hook.command, data, hook.timeout)
            if error is not None:
                self.report({"hook": list(hook.command), "event": payload.get("type"), "error": error})

        self.spawn(run())
