"""Run the user's hooks on events: the event's JSON on stdin, never on a command line.

Each hook runs in the background with a timeout (its whole process group is killed when
the timeout passes); a hook that fails or hangs is reported as a `hook_failed` event and
never holds up admission. A hook with `debounce` gets one summary event for everything
that matched during that window ("5 succeeded, 1 failed") instead of one run per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from kugetsu_tui.engine.config import Hook
from kugetsu_tui.engine.model import Event, EventType, iso

SUMMARY_WORDS = {
    "task_completed": "succeeded",
    "task_error": "failed",
    "task_cancelled": "cancelled",
    "task_expired": "expired",
    "task_retrying": "retrying",
    "task_started": "started",
    "task_queued": "queued",
}


def summary_text(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {SUMMARY_WORDS.get(kind, kind)}" for kind, n in counts.most_common())


def run_hook(command: Sequence[str], payload: bytes, timeout: float) -> str | None:
    """Run one hook to the end (blocking; call it in a thread). None, or why it failed."""
    try:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as failure:
        return f"cannot start {command[0]!r}: {failure.strerror}"
    try:
        _, err = proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"timed out after {timeout:g}s (killed)"
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        return f"exit code {proc.returncode}" + (f": {tail[0][:200]}" if tail else "")
    return None


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
            error = await asyncio.to_thread(run_hook, hook.command, data, hook.timeout)
            if error is not None:
                self.report({"hook": list(hook.command), "event": payload.get("type"), "error": error})

        self.spawn(run())
