"""(7) Scale of the read side: with 100,000 queued, what `kugetsu status` costs a person
and a planner that polls it: wall time and peak RSS of `status` (its 50-row window),
`status --json --limit 10` and `status --json --all` (every task), each a fresh process.

The home is filled with one `add --from-file` (priorities mixed, some held) and no
supervisor, so `status` also pays for the advisor's own reading of the machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _lib import KUGETSU, PYTHON, emit, fresh_home, home_env, main_args, median, say, scratch, timed

COMMANDS = {
    "status": ["status"],
    "json_limit_10": ["status", "--json", "--limit", "10"],
    "json_all": ["status", "--json", "--all"],
}


def fill(home: Path, work: Path, queued: int) -> float:
    """`queued` tasks in one `add --from-file`; returns its seconds."""
    lines = []
    for n in range(queued):
        task = {"prompt": f"task {n}: fix the flaky test in module {n % 97}", "no_worktree": True}
        if n % 10 == 0:
            task["priority"] = n % 7
        lines.append(json.dumps(task) + "\n")
    path = work / "tasks.jsonl"
    path.write_text("".join(lines))
    return timed([*KUGETSU, "add", "--from-file", str(path)], env=home_env(home))


# Runs its arguments as a child and reports that child's wall time, peak RSS and exit code.
# Peak RSS comes from a small parent because Linux counts the parent's own high-water mark
# at exec as the child's (ru_maxrss), and this script holds the tasks file in memory.
MEASURE = (
    "import os, subprocess, sys, time; t = time.perf_counter(); p = subprocess.Popen(sys.argv[1:]);"
    " _, s, u = os.wait4(p.pid, 0);"
    " print(time.perf_counter() - t, u.ru_maxrss * 1024, os.waitstatus_to_exitcode(s), file=sys.stderr)"
)


def measured(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command, its stdout written to `out`."""
    with open(out, "wb") as sink:
        done = subprocess.run(
            [PYTHON, "-c", MEASURE, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.PIPE,
        )
    took, rss, code = done.stderr.decode().splitlines()[-1].split()
    if done.returncode != 0 or code != "0":
        raise SystemExit(f"{' '.join(argv)} exited {code}: {done.stderr.decode()}")
    return float(took), int(rss)


def main() -> None:
    args = main_args(__doc__ or "")
    queued = 20_000 if args.quick else 100_000
    say(f"status_scale: {queued:,} queued; {args.rounds} rounds of each command")
    with scratch("status-scale") as work:
        home = fresh_home(work, 4, {"bench": ["true", "{prompt}"]}, "bench")
        env = home_env(home)
        fill_s = fill(home, work, queued)
        say(f"  filled in {fill_s:.1f} s")
        results: dict[str, dict[str, list[float]]] = {name: {"s": [], "rss": []} for name in COMMANDS}
        sizes: dict[str, int] = {}
        for n in range(args.rounds):
            for name, command in COMMANDS.items():
                out = work / f"{name}.out"
                took, rss = measured([*KUGETSU, *command], env, out)
                results[name]["s"].append(took)
                results[name]["rss"].append(rss)
                sizes[name] = out.stat().st_size
                say(f"  round {n + 1}/{args.rounds} {name:<14} {took * 1000:7.0f} ms  {rss / 2**20:5.0f} MiB")
        every = json.loads((work / "json_all.out").read_text())
        if len(every["tasks"]) != queued:
            raise SystemExit(f"status --json --all listed {len(every['tasks'])} tasks, expected {queued}")
    figures: dict[str, object] = {"queued": queued, "fill_s": fill_s}
    for name, r in results.items():
        figures[name] = {
            "ms": median(r["s"]) * 1000,
            "rss_mib": median(r["rss"]) / 2**20,
            "rounds_ms": [s * 1000 for s in r["s"]],
            "output_bytes": sizes[name],
        }
        say(
            f"  {name:<14} {median(r['s']) * 1000:7.0f} ms  {median(r['rss']) / 2**20:5.0f} MiB  {sizes[name]:,} bytes"
        )
    emit(args, "status_scale", figures)


if __name__ == "__main__":
    main()
