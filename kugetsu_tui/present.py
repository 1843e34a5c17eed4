"""How tasks read to people and to scripts: symbols, durations and the status report.

Shared by the CLI and the dashboard so that both say the same thing the same way.
Reads the store; never changes it.
"""

from __future__ import annotations

from typing import Any

from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import State, Task
from kugetsu_tui.engine.slots import QueueView, explain_queue
from kugetsu_tui.engine.store import Store

# A symbol per state, so the state reads without colour too.
STATE_SYMBOL: dict[State, str] = {
    State.QUEUED: "·",
    State.STARTING: "◌",
    State.RUNNING: "▶",
    State.PAUSED: "‖",
    State.SUCCEEDED: "✓",
    State.FAILED: "✗",
    State.CANCELLED: "⊘",
    State.EXPIRED: "⌛",
}


def elapsed(seconds: float | None) -> str:
    """1:05, 12:30, 2h05m; '?' for unknown."""
    if seconds is None:
        return "?"
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    hours, rest = divmod(seconds, 3600)
    if hours < 48:
        return f"{hours}h{rest // 60:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def queue_view(store: Store, queued: list[Task], cap: int, now: float, home: Home) -> QueueView:
    return explain_queue(
        queued, live=store.live_count(), cap=cap, now=now, supervisor=home.supervisor_pid() is not None
    )


def status_report(store: Store, home: Home, cap: int, now: float) -> dict[str, Any]:
    """The object `kugetsu status --json` prints (the contract scripts rely on)."""
    tasks = store.tasks()
    queued = [t for t in tasks if t.state is State.QUEUED]
    live = store.live_count()
    supervisor = home.supervisor_pid()
    view = explain_queue(queued, live=live, cap=cap, now=now, supervisor=supervisor is not None)
    counts = store.counts()
    rows = []
    for task in tasks:
        row = task.to_json()
        row["position"] = view.position.get(task.id)
        row["wait_reason"] = view.wait_reason.get(task.id)
        rows.append(row)
    return {
        "cap": cap,
        "live": live,
        "supervisor_pid": supervisor if supervisor and supervisor > 0 else None,
        "counts": {str(s): n for s, n in counts.items()},
        "tasks": rows,
    }
