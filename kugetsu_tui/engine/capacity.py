"""How many agents this machine can hold right now: readings in, a suggested cap out.

`suggest_cap` is a pure function of readings and limits, so it is tested over tables of
machines. `Smoother` keeps the suggestion from flapping when load bounces. `Sampler` and
`sample_tree` are the only places that read psutil: the machine as a whole, and one
agent's process tree (CPU, RSS summed over every process, process count).

Unknown stays unknown: a reading that could not be taken is None, never 0.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine.config import DEFAULT_EST_CPU, DEFAULT_EST_RSS

if TYPE_CHECKING:
    from kugetsu_tui.engine.config import Config
    from kugetsu_tui.engine.store import Store

GIB = 2**30
MIN_CPU_SHARE = 0.25  # an agent mostly waits on its model; still count a quarter core


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu_percent: float | None  # of the whole machine, over the last window
    load1: float | None
    mem_total: int
    mem_available: int
    swap_total: int = 0
    swap_used: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cpus": self.cpus,
            "cpu_percent": self.cpu_percent,
            "load": self.load1,
            "mem_total": self.mem_total,
            "mem_available": self.mem_available,
            "swap_total": self.swap_total,
            "swap_used": self.swap_used,
        }


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What one agent costs: measured medians, or the config's estimate before any ran."""

    rss: float  # bytes at its peak
    cpu: float  # cores it keeps busy on average
    measured: bool


@dataclass(frozen=True, slots=True)
class Limits:
    cap_min: int = 1
    cap_max: int = 16
    memory_reserve: float = 2 * GIB


@dataclass(frozen=True, slots=True)
class Suggestion:
    cap: int
    reason: str


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def suggest_cap(
    machine: Machine, limits: Limits, profile: AgentProfile, live: int, agents_cpu: float = 0.0
) -> Suggestion:
    """The cap this machine can hold now, within [cap_min, cap_max], with the reason.

    Memory: the agents already live plus as many more as fit in the memory available
    above the reserve. CPU: the cores not busy with other work, divided by what one agent
    keeps busy. Swap half used means memory is already short: no room for more."""
    each_rss = max(profile.rss, 1.0)
    free = machine.mem_available - limits.memory_reserve
    by_memory = live + max(math.floor(free / each_rss), 0)
    kind = "measured" if profile.measured else "estimated"
    memory_reason = (
        f"memory: {gib(machine.mem_available)} available, {gib(limits.memory_reserve)} "
        f"reserve, agents use ~{gib(each_rss)} each ({kind}) → {by_memory}"
    )
    if machine.swap_total and machine.swap_used > machine.swap_total / 2:
        by_memory = min(by_memory, live)
        memory_reason = f"memory: swap {gib(machine.swap_used)} in use, no room for more → {by_memory}"
    share = max(profile.cpu, MIN_CPU_SHARE)
    busy_elsewhere = 0.0
    if machine.load1 is not None:
        busy_elsewhere = max(min(machine.load1, machine.cpus * 2.0) - agents_cpu, 0.0)
    spare_cores = max(machine.cpus - busy_elsewhere, 0.5)
    by_cpu = max(math.floor(spare_cores / share), 1)
    cpu_reason = (
        f"cpu: {machine.cpus} cores, {spare_cores:.1f} not busy elsewhere, agents use "
        f"~{share:.2f} core each → {by_cpu}"
    )
    raw = min(by_memory, by_cpu)
    cap = min(max(raw, limits.cap_min), limits.cap_max)
    reasons = [memory_reason, cpu_reason] if by_memory <= by_cpu else [cpu_reason, memory_reason]
    bound = ""
    if cap != raw:
        bound = f"; kept within [{limits.cap_min}, {limits.cap_max}]"
    return Suggestion(cap, "; ".join(reasons) + bound)


def limits_for(config: Config) -> Limits:
    return Limits(cap_min=config.cap_min, cap_max=config.cap_max, memory_reserve=config.memory_reserve)


def profile_in_play(store: Store, config: Config) -> AgentProfile:
    """The costliest of the agents in play (live, or next in the queue; else the default
    one), each learned from its finished attempts or estimated from the config."""
    names = {t.agent for t in store.live()} | {t.agent for t in store.queued(limit=1)}
    profiles = []
    for name in names or {config.default_agent}:
        agent = config.agents.get(name)
        history = store.usage_history(name)
        profiles.append(
            learn_profile(
                [peak for peak, _ in history],
                [share for _, share in history],
                agent.est_rss if agent else DEFAULT_EST_RSS,
                agent.est_cpu if agent else DEFAULT_EST_CPU,
            )
        )
    return max(profiles, key=lambda p: (p.rss, p.cpu))


def learn_profile(
    peaks: Sequence[float], shares: Sequence[float], est_rss: float, est_cpu: float
) -> AgentProfile:
    """Medians of finished attempts; the configured estimate until three have finished."""
    if len(peaks) >= 3:
        return AgentProfile(statistics.median(peaks), statistics.median(shares) if shares else est_cpu, True)
    return AgentProfile(est_rss, est_cpu, False)


@dataclass
class Smoother:
    """Hysteresis: follow a lower suggestion after it held for `down_after` seconds and a
    higher one after `up_after` seconds, so a bouncing load does not make the cap flap."""

    down_after: float = 10.0
    up_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    current: int | None = None
    _pending: int | None = None
    _since: float = 0.0

    def update(self, raw: int) -> int:
        now = self.clock()
        if self.current is None:
            self.current = raw
            return raw
        if raw == self.current:
            self._pending = None
            return self.current
        if self._pending is None or (raw > self.current) != (self._pending > self.current):
            self._pending, self._since = raw, now
        else:
            # Same direction as before: move to the most conservative value seen.
            self._pending = min(self._pending, raw) if raw > self.current else max(self._pending, raw)
        wait = self.up_after if self._pending > self.current else self.down_after
        if now - self._since >= wait:
            self.current, self._pending = self._pending, None
        return self.current


# --- readings (psutil) ----------------------------------------------------------------


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
    import os

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


def available_memory() -> int:
    """Bytes of memory available now (one read of /proc/meminfo): the admission guard."""
    import psutil

    return int(psutil.virtual_memory().available)
