"""(6) Cap under pressure: N short fake agents at cap 3 while a sampler reads the OS
process table every 10 ms; the most agents ever seen alive at once, for each tool.

The fake agent is a shell script with a name of its own (`kgb-agent`), so the sampler
counts agents by process name, whichever tool started them; wrappers and the tools
themselves are not counted, nor zombies. For kugetsu it must never exceed the cap.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from _lib import TOOLS, available_tools, emit, main_args, say, scratch

AGENT = "kgb-agent"
INTERVAL = 0.010


def _agent_stat(pid: str) -> tuple[bytes, bytes] | None:
    """(parent pid, start time) if PID is a live (not zombie) agent, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    close = data.rindex(b")")
    if data[data.index(b"(") + 1 : close] != AGENT.encode() or data[close + 2 : close + 3] in (b"Z", b"X"):
        return None
    fields = data[close + 2 :].split()
    return fields[1], fields[19]  # the start time tells a reused pid apart


def live_agents() -> int:
    """Agents that were all alive at one same instant.

    One scan of /proc is not a snapshot: an agent may end and the next one start while it
    runs, and both would be counted. So the agents found are read again after the scan;
    each one seen in both passes was alive from its first read to its second, and every
    first read came before every second read, so they were all alive together in between.
    An agent's own fork that has not yet become `sleep` bears its name too: a process
    whose parent is an agent is part of that agent, not another one."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            seen = _agent_stat(entry.name)
            if seen is not None:
                found[entry.name] = seen
    agents = [pid for pid, (parent, _) in found.items() if parent.decode() not in found]
    return sum(1 for pid in agents if _agent_stat(pid) == found[pid])


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.samples = 0
        self.max_live = 0
        self.seen: dict[int, int] = {}

    def run(self) -> None:
        while not self.done.is_set():
            live = live_agents()
            self.samples += 1
            self.max_live = max(self.max_live, live)
            self.seen[live] = self.seen.get(live, 0) + 1
            time.sleep(INTERVAL)


def make_agent(work: Path, seconds: float) -> Path:
    path = work / AGENT
    path.write_text(f"#!/bin/sh\nsleep {seconds}\n")
    path.chmod(0o755)
    return path


def main() -> None:
    args = main_args(__doc__ or "")
    tasks, cap, seconds = (60 if args.quick else 200), 3, 0.05
    say(f"cap under pressure: {tasks} fake agents (sleep {seconds}) at cap {cap}, sampled every 10 ms")
    results = {}
    with scratch("cap") as work:
        agent = make_agent(work, seconds)
        for name in available_tools():
            batch, _ = TOOLS[name]
            sampler = Sampler()
            with scratch(name) as tmp:
                sampler.start()
                run = batch([str(agent)], [f"t{n}" for n in range(tasks)], cap, tmp)
                sampler.done.set()
                sampler.join()
            results[name] = {
                "max_live": sampler.max_live,
                "samples": sampler.samples,
                "histogram": {str(k): v for k, v in sorted(sampler.seen.items())},
                "run_s": run["run_s"],
            }
            verdict = "ok" if sampler.max_live <= cap else "OVER THE CAP"
            say(f"  {name:<9} max live {sampler.max_live} of cap {cap} ({sampler.samples} samples) {verdict}")
    emit(args, "cap_pressure", {"tasks": tasks, "cap": cap, "interval_ms": INTERVAL * 1000, "tools": results})


if __name__ == "__main__":
    main()
