"""How many agents this machine can hold right now: readings in, a suggested cap out.

`suggest_cap` is a pure function of readings and limits, so it is tested over tables of
machines. `Smoother` keeps the suggestion from flapping when load comes and goes. The
readings themselves are taken in readings.py.

Unknown stays unknown: a reading that could not be taken is None, never 0.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine.config import DEFAULT_EST_CPU, DEFAULT_EST_RSS

if TYPE_CHECKING:
    from kugetsu_tui.engine.config import Config
    from kugetsu_tui.engine.store import Store

GIB = 2**30
MIB = 2**20
MIN_CPU_SHARE = 0.05  # an agent mostly waits on its model (claude measured 0.07 core); never count less
MIN_RSS = 32 * MIB  # a reading below this is an agent not sampled yet, not its real size
LONG_ENOUGH = 20.0  # seconds: a failed attempt shorter than this (a bad key, a missing binary)
# tells nothing about what the agent costs while it works
NOT_THE_LIMIT = 10  # a memory bound this many times the CPU bound is not worth a figure
# What the built-in agents hold before any is measured here (resident memory of the whole
# tree, MCP servers included; cores kept busy on average). Claude Code is reported at
# 0.4-2 GB once MCP servers and long sessions count; the others are smaller Node/Python CLIs.
PRESET_ESTIMATES: dict[str, tuple[float, float]] = {
    "claude": (1.5 * GIB, 0.1),
    "codex": (0.8 * GIB, 0.1),
    "opencode": (1.0 * GIB, 0.15),
    "aider": (0.5 * GIB, 0.2),
}


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
    """What one agent costs: medians of what was measured (finished attempts that ran long
    enough, and the agents running now), or the estimate before anything was."""

    rss: float  # bytes at its peak
    cpu: float  # cores it keeps busy on average
    measured: bool
    samples: int = 0  # how many attempts the memory figure comes from (0: estimated)
    est_rss: float = DEFAULT_EST_RSS  # what a reading of (near) zero falls back to
    cpu_samples: int = 0  # how many attempts the CPU figure comes from (0: estimated)

    @property
    def source(self) -> str:
        return f"measured over {self.samples}" if self.measured else "estimated"

    @property
    def cpu_source(self) -> str:
        return f"measured over {self.cpu_samples}" if self.cpu_samples else "estimated"


@dataclass(frozen=True, slots=True)
class Limits:
    cap_min: int = 1
    cap_max: int = 16
    memory_reserve: float = 2 * GIB


@dataclass(frozen=True, slots=True)
class Suggestion:
    cap: int
    reason: str
    by_memory: int | None = None  # the memory bound alone (for the smoother: memory short)
    each_rss: float | None = None  # what one more agent is expected to take


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def suggest_cap(
    machine: Machine, limits: Limits, profile: AgentProfile, live: int, agents_cpu: float = 0.0
) -> Suggestion:
    """The cap this machine can hold now, within [cap_min, cap_max], with the reason.

    Memory: the agents already live plus as many more as fit in the memory available
    above the reserve. CPU: the cores not busy with other work, divided by what one agent
    keeps busy. Swap half used means memory is already short: no room for more."""
    each_rss = profile.rss if profile.rss >= MIN_RSS else max(profile.est_rss, MIN_RSS)
    kind = profile.source if profile.rss >= MIN_RSS else "estimated"
    free = machine.mem_available - limits.memory_reserve
    by_memory = live + max(math.floor(free / each_rss), 0)
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
        f"~{share:.2f} core each ({profile.cpu_source}) → {by_cpu}"
    )
    if by_memory >= NOT_THE_LIMIT * min(by_cpu, limits.cap_max):
        memory_reason = (
            f"memory: not the limit ({gib(machine.mem_available)} available, ~{gib(each_rss)} each)"
        )
    raw = min(by_memory, by_cpu)
    cap = min(max(raw, limits.cap_min), limits.cap_max)
    reasons = [memory_reason, cpu_reason] if by_memory <= by_cpu else [cpu_reason, memory_reason]
    bound = ""
    if cap != raw:
        bound = f"; kept within [{limits.cap_min}, {limits.cap_max}]"
    return Suggestion(cap, "; ".join(reasons) + bound, by_memory=by_memory, each_rss=each_rss)


def why_far_below(suggested: int, cap: int) -> str | None:
    """A warning when applying the suggestion would cut the cap by half or more (and by 2+)."""
    if cap - suggested >= 2 and suggested * 2 <= cap:
        return f"the suggestion ({suggested}) is far below the cap ({cap}): running agents drain down to it"
    return None


def limits_for(config: Config) -> Limits:
    return Limits(cap_min=config.cap_min, cap_max=config.cap_max, memory_reserve=config.memory_reserve)


def estimate_for(config: Config, name: str) -> tuple[float, float]:
    """(RSS, cores) one agent of this name is expected to use before anything is measured:
    its config's estimate when set, else the built-in preset's, else the default."""
    agent = config.agents.get(name)
    est_rss = agent.est_rss if agent else DEFAULT_EST_RSS
    est_cpu = agent.est_cpu if agent else DEFAULT_EST_CPU
    preset = PRESET_ESTIMATES.get(name)
    if preset is not None:
        if est_rss == DEFAULT_EST_RSS:
            est_rss = preset[0]
        if est_cpu == DEFAULT_EST_CPU:
            est_cpu = preset[1]
    return est_rss, est_cpu


def profile_in_play(store: Store, config: Config) -> AgentProfile:
    """The costliest of the agents in play (live, or next in the queue; else the default
    one), each learned from its finished attempts that ran long enough and from the live
    readings of its running agents, or estimated before any was measured."""
    live = store.live()
    names = {t.agent for t in live} | {t.agent for t in store.queued(limit=1)}
    profiles = []
    for name in names or {config.default_agent}:
        history = store.usage_history(name, min_wall=LONG_ENOUGH)
        running = [t for t in live if t.agent == name and t.peak_rss]
        est_rss, est_cpu = estimate_for(config, name)
        profiles.append(
            learn_profile(
                [peak for peak, _ in history],
                [share for _, share in history],
                est_rss,
                est_cpu,
                [float(t.peak_rss or 0) for t in running],
                [(t.cpu_percent or 0.0) / 100 for t in running],
            )
        )
    return max(profiles, key=lambda p: (p.rss, p.cpu))


def learn_profile(
    peaks: Sequence[float],
    shares: Sequence[float],
    est_rss: float,
    est_cpu: float,
    live_peaks: Sequence[float] = (),
    live_shares: Sequence[float] = (),
) -> AgentProfile:
    """What one agent costs: the medians of its finished attempts (the estimate before any
    finished), raised at once to the peak of the ones running now when those are heavier;
    CPU from both. Readings too small to be a real agent (not sampled yet) are left out."""
    finished = [(p, s) for p, s in zip(peaks, shares, strict=False) if p >= MIN_RSS]
    live = [(p, s) for p, s in zip(live_peaks, live_shares, strict=False) if p >= MIN_RSS]
    rss, rss_samples = (
        (statistics.median(p for p, _ in finished), len(finished)) if finished else (est_rss, 0)
    )
    heaviest_now = max((p for p, _ in live), default=0.0)
    if heaviest_now > rss:  # what runs now is heavier than the history: believe it
        rss, rss_samples = heaviest_now, len(finished) + len(live)
    cpu_readings = [s for _, s in finished] + [s for _, s in live]
    cpu = statistics.median(cpu_readings) if cpu_readings else est_cpu
    return AgentProfile(
        rss, cpu, rss_samples > 0, samples=rss_samples, est_rss=est_rss, cpu_samples=len(cpu_readings)
    )


def admissions_that_fit(available: float, reserve: float, each_rss: float) -> int:
    """How many agents may start now so that, once each holds what it is expected to,
    available memory stays at or above the reserve: the first needs available >= reserve,
    every later one of the same tick its own share on top."""
    if reserve <= 0:
        return 1 << 30
    if available < reserve:
        return 0
    return 1 + math.floor((available - reserve) / max(each_rss, MIN_RSS))


@dataclass
class Smoother:
    """Hysteresis on both sides, one step at a time: the cap suggested goes up by one only
    after every reading of the last `up_after` seconds was above it, and down by one only
    after every reading of the last `down_after` seconds was below it, so a load that comes
    and goes leaves it where it is. Memory short (the memory bound below the current value)
    is followed at once: waiting there means swapping."""

    down_after: float = 60.0
    up_after: float = 120.0
    clock: Callable[[], float] = time.monotonic
    current: int | None = None
    _readings: deque[tuple[float, int]] = field(default_factory=deque)
    _last_step: float = 0.0

    def update(self, raw: int, memory_bound: int | None = None) -> int:
        now = self.clock()
        if self.current is None or (memory_bound is not None and memory_bound < self.current):
            if self.current is None or raw < self.current:
                self.current = raw
            self._readings.clear()
            self._readings.append((now, raw))
            self._last_step = now
            return self.current
        self._readings.append((now, raw))
        horizon = now - max(self.up_after, self.down_after)
        while self._readings and self._readings[0][0] < horizon:
            self._readings.popleft()
        if self._held_for(now, self.up_after, above=True):
            self.current += 1
            self._last_step = now
        elif self._held_for(now, self.down_after, above=False):
            self.current -= 1
            self._last_step = now
        return self.current

    def _held_for(self, now: float, seconds: float, *, above: bool) -> bool:
        """Every reading of the last `seconds` (and the last step that long ago) was above
        (or below) the current value."""
        assert self.current is not None
        if now - self._last_step < seconds:
            return False
        recent = [r for t, r in self._readings if t >= now - seconds]
        return all(r > self.current for r in recent) if above else all(r < self.current for r in recent)


@dataclass
class PressureRelief:
    """memory_pressure = "pause_newest" as a policy over readings (it touches no process).

    Under half the reserve it pauses the newest running agent: one, then it waits `settle`
    seconds to see whether that was enough (stopping a process frees no memory at once, so
    the next sample would still see pressure), and it never pauses the last one running.
    It resumes the earliest it paused once available memory plus what the paused agents
    hold is above the reserve (their memory is theirs already: running again takes no
    more) and memory is not short now; at once when nothing runs any more, since then
    nothing would ever free memory. A person's resume wins for `respect` seconds: that
    agent is not paused again meanwhile."""

    settle: float = 20.0
    respect: float = 300.0
    paused: list[int] = field(default_factory=list)  # paused for pressure, earliest first
    _last_pause: float = -math.inf
    _resumed_by_person: dict[int, float] = field(default_factory=dict)

    def decide(
        self,
        now: float,
        available: float,
        reserve: float,
        running: Sequence[tuple[int, float]],
        paused_rss: dict[int, float],
    ) -> tuple[str, int] | None:
        """("pause", task id), ("resume", task id) or None.

        running: (task id, started at) of each running agent; paused_rss: the memory each
        agent this policy paused and that is still paused holds (0 when unknown)."""
        self._forget(now, {task_id for task_id, _ in running}, paused_rss)
        if self.paused and not running:
            return ("resume", self.paused[0])  # never all paused with nothing running
        short = available < reserve / 2
        if short:
            candidates = [(started, t) for t, started in running if t not in self._resumed_by_person]
            if len(running) > 1 and candidates and now - self._last_pause >= self.settle:
                return ("pause", max(candidates)[1])
            return None
        held = sum(paused_rss.get(t, 0.0) for t in self.paused)
        clear = available >= reserve  # no doubt left: resume without waiting
        if self.paused and (clear or (available + held >= reserve and now - self._last_pause >= self.settle)):
            return ("resume", self.paused[0])
        return None

    def _forget(self, now: float, running_ids: set[int], paused_rss: dict[int, float]) -> None:
        """Drop the paused agents that settled or a person resumed (those are respected for
        `respect` seconds), and respects that ran out."""
        for task_id in [t for t in self.paused if t not in paused_rss]:
            self.paused.remove(task_id)
            if task_id in running_ids:
                self._resumed_by_person[task_id] = now
        for task_id, since in list(self._resumed_by_person.items()):
            if now - since >= self.respect:
                del self._resumed_by_person[task_id]

    def record_pause(self, task_id: int, now: float) -> None:
        self.paused.append(task_id)
        self._last_pause = now

    def record_resume(self, task_id: int) -> None:
        if task_id in self.paused:
            self.paused.remove(task_id)
