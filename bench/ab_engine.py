"""A/B two source trees of kugetsu_tui on the dispatch benchmark, interleaved.

usage: ab_engine.py TREE_A TREE_B [--rounds N] [--tasks N]

Each TREE is a folder holding a `kugetsu_tui` package (e.g. `git archive <commit>
kugetsu_tui | tar -x -C TREE`). Round by round, each tree fills a fresh home with N `true`
tasks and drains it with `run --headless` in a process of its own; the figures are the
medians of wall time, the supervisor's own CPU per task, and the CPU of the agents and
their wrappers per task (reaped children). CPU per task moves far less than wall time
when the machine is shared, so it is the figure to compare engine changes by.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _lib import PYTHON, fresh_home, say, scratch, write_tasks

CHILD = r"""
import os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import kugetsu_tui
assert kugetsu_tui.__file__.startswith(sys.argv[1]), kugetsu_tui.__file__
from kugetsu_tui.cli import main
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
main(["add", "--from-file", sys.argv[2]])
start = time.perf_counter()
main(["run", "--headless"])
wall = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(2, ("AB %f %f %f\n" % (wall, own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime)).encode())
"""


def one_run(tree: str, tasks: int, work: Path) -> tuple[float, float, float]:
    home = fresh_home(work, 4, {"bench": ["true", "{prompt}"]}, "bench")
    jsonl = write_tasks(work / f"{home.name}.jsonl", [f"t{n}" for n in range(tasks)])
    out = subprocess.run(
        [PYTHON, "-c", CHILD, tree, str(jsonl)],
        env={**os.environ, "KUGETSU_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in out.stderr.splitlines() if x.startswith("AB "))
    wall, own, kids = (float(v) for v in line.split()[1:])
    return wall, own / tasks * 1000, kids / tasks * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees]
    runs: dict[str, list[tuple[float, float, float]]] = {t: [] for t in trees}
    with scratch("ab") as work:
        for n in range(args.rounds):
            for tree in trees:
                runs[tree].append(one_run(tree, args.tasks, work))
                say(f"  round {n + 1}/{args.rounds} {tree}: {runs[tree][-1][0]:.2f} s")
    figures = {}
    for tree, results in runs.items():
        wall, own, kids = (statistics.median(r[i] for r in results) for i in range(3))
        figures[tree] = {
            "wall_s": wall,
            "jobs_per_s": args.tasks / wall,
            "supervisor_cpu_ms_per_task": own,
            "agents_cpu_ms_per_task": kids,
            "walls": [r[0] for r in results],
        }
        print(
            f"{tree}: {args.tasks / wall:.0f} jobs/s (median wall {wall:.2f} s), supervisor CPU "
            f"{own:.2f} ms/task, agents and wrappers {kids:.2f} ms/task"
        )
    if args.out:
        args.out.write_text(
            json.dumps({"tasks": args.tasks, "rounds": args.rounds, "trees": figures}, indent=2)
        )


if __name__ == "__main__":
    sys.exit(main())
