"""The machine as the dashboard's header shows it: CPU per core, memory, load.

The one psutil reading the dashboard takes itself, in a worker thread, never on the UI
loop. Per-task CPU and RSS are not sampled here: the supervisor meters every agent's
process tree and stores the readings on the task, where the dashboard reads them.
Tests inject a fixed `MachineSampler` so that snapshots do not depend on the machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class MachineReading:
    cpu_percent: float
    per_cpu: tuple[float, ...]
    mem_total: int
    mem_available: int
    load: tuple[float, float, float] | None

    @property
    def mem_used(self) -> int:
        return self.mem_total - self.mem_available


MachineSampler = Callable[[], MachineReading]


def sample_machine() -> MachineReading:
    """CPU since the previous call (the first call reads 0), memory and load right now."""
    per_cpu = tuple(psutil.cpu_percent(percpu=True))
    memory = psutil.virtual_memory()
    try:
        load: tuple[float, float, float] | None = os.getloadavg()
    except OSError:
        load = None
    cpu = sum(per_cpu) / len(per_cpu) if per_cpu else 0.0
    return MachineReading(cpu, per_cpu, memory.total, memory.available, load)
