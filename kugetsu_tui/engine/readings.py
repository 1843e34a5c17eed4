"""The one place that reads the machine (psutil, /proc): the machine as a whole, the
memory available to admission, and each agent's process tree (CPU, RSS summed over every
process, process count).

Unknown stays unknown: a reading that could not be taken is None, never 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from kugetsu_tui.engine.capacity import Machine


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """One agent's process tree right now."""

    cpu_percent: float | None  # percent of one core, summed over the tree
    cpu_seconds: float
    rss: int
    procs: int
    members: frozenset[tuple[int, float]] = frozenset()  # (pid, create time) below the root


@dataclass
class TreeMeter:
    """Samples agents' process trees with one scan of the process table per sample.

    Keeps psutil.Process objects between samples, since CPU percent needs a baseline."""

    _procs: dict[int, Any] = field(default_factory=dict)

    def sample(self, roots: Iterable[int]) -> dict[int, TreeUsage]:
        """Usage of the tree under each root pid (root included); absent roots are gone."""
        import psutil

        roots = list(roots)
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        found: dict[int, TreeUsage] = {}
        seen: set[int] = set()
        for root in roots:
            tree, stack = [], [root]
            while stack:
                pid = stack.pop()
                tree.append(pid)
                stack.extend(children.get(pid, ()))
            seen.update(tree)
            usage = self._measure(root, tree, psutil)
            if usage is not None:
                found[root] = usage
        for pid in [p for p in self._procs if p not in seen]:
            del self._procs[pid]
        return found

    def _measure(self, root: int, tree: list[int], psutil: Any) -> TreeUsage | None:
        cpu_percent: float | None = 0.0 if root in self._procs else None  # first look: baseline
        cpu_seconds = 0.0
        rss = 0
        count = 0
        members = []
        for pid in tree:
            try:
                proc = self._procs.get(pid) or self._procs.setdefault(pid, psutil.Process(pid))
                with proc.oneshot():
                    percent = proc.cpu_percent(None)
                    times = proc.cpu_times()
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._procs.pop(pid, None)
                continue
            count += 1
            if pid != root:  # who it started, to end what outlives it (create time: not a reused pid)
                members.append((pid, proc.create_time()))
            cpu_seconds += times.user + times.system
            if cpu_percent is not None:
                cpu_percent += percent
        if count == 0:
            return None
        return TreeUsage(cpu_percent, cpu_seconds, rss, count, frozenset(members))


def read_machine() -> Machine:
    """The machine now, CPU percent since the last call (psutil keeps the window)."""
    import psutil

    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    try:
        load1: float | None = os.getloadavg()[0]
    except OSError:
        load1 = None
    return Machine(
        cpus=psutil.cpu_count(logical=True) or 1,
        cpu_percent=psutil.cpu_percent(None),
        load1=load1,
        mem_total=int(mem.total),
        mem_available=int(mem.available),
        swap_total=int(swap.total),
        swap_used=int(swap.used),
    )


def read_machine_once() -> Machine:
    """The machine at one instant, for a process that reads it once (`status` with no
    supervisor running): no CPU percent (an instant has none), and no psutil to import
    where /proc/meminfo tells it all."""
    try:
        with open("/proc/meminfo", "rb") as f:
            info = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(b":") for line in f)}
        mem_total, available = info[b"MemTotal"], info[b"MemAvailable"]
        swap_total, swap_free = info.get(b"SwapTotal", 0), info.get(b"SwapFree", 0)
    except (OSError, ValueError, IndexError, KeyError):
        return replace(read_machine(), cpu_percent=None)
    try:
        load1: float | None = os.getloadavg()[0]
    except OSError:
        load1 = None
    return Machine(
        cpus=os.cpu_count() or 1,
        cpu_percent=None,
        load1=load1,
        mem_total=mem_total,
        mem_available=available,
        swap_total=swap_total,
        swap_used=swap_total - swap_free,
    )


def available_memory() -> int:
    """Bytes of memory available now (one read of /proc/meminfo): the admission guard.

    Read directly where the kernel tells it (what psutil reports too), so the first
    admission does not wait for psutil's import."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import psutil

    return int(psutil.virtual_memory().available)
