"""The supervisor: the one async loop that admits, spawns, reaps and settles agents.

One file per job, each readable alone:

    loop.py       the Supervisor (the state every job shares), run, the tick's order, wake-ups
    attempt.py    an attempt being watched (Proc): watch it, end it
    requests.py   request rows from other processes: cancel, pause, resume, cap
    start.py      admission -> worktree -> spawn through the executor
    settle.py     reap and settle: success, retries with backoff, rate-limit cooldowns
    deadlines.py  timeouts, SIGKILL after the grace, expiry of queued tasks
    advisor.py    sampling (psutil), suggested cap, memory pressure, published facts
    reload.py     config hot reload
    recovery.py   re-adoption after a restart
"""

from kugetsu_tui.engine.supervisor.loop import RunSummary, Supervisor
from kugetsu_tui.engine.supervisor.output import describe_status

__all__ = ["RunSummary", "Supervisor", "describe_status"]
