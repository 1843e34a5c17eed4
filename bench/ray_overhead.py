"""Per-task overhead of the Ray executor against the local one, on this machine.

The same N tasks (`true`, each in its own git worktree, or with --no-worktree) run at the
same cap through `kugetsu run --headless`: once with `[executor] kind = "local"`, once on
a Ray cluster of two nodes started here on 127.0.0.1 (a head and one worker). Prints the
wall time of each run and the difference per task: what an actor, the bundle that goes
out and the one that comes back cost each task. Needs `pip install 'kugetsu-tui[ray]'`.

usage: python bench/ray_overhead.py [--tasks N] [--cap N] [--no-worktree] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

PYTHON = sys.executable


def kugetsu(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUGETSU_HOME": str(home)}
    return subprocess.run(
        [PYTHON, "-m", "kugetsu_tui", *args], env=env, capture_output=True, text=True, check=True
    )


def make_repo(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "README.md").write_text("# bench\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "start"]):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args], cwd=where, check=True
        )
    return where


def run(work: Path, name: str, executor: dict[str, str], tasks: int, cap: int, worktree: bool) -> float:
    home = work / name
    home.mkdir(mode=0o700)
    config = {
        "default_agent": "true",
        "capacity": {"cap": cap, "memory_reserve": 0},
        "executor": executor,
        "agents": {"true": {"command": ["true"], "est_rss": "16MiB"}},
    }
    (home / "config.toml").write_text(tomli_w.dumps(config))
    repo = make_repo(work / f"{name}-repo")
    task = {"repo": str(repo), "no_worktree": not worktree}
    prompts = work / f"{name}-tasks.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"task {n}", **task}) + "\n" for n in range(tasks)))
    kugetsu(home, "add", "--from-file", str(prompts))
    started = time.perf_counter()
    kugetsu(home, "run", "--headless")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--no-worktree", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only
    from ray.cluster_utils import Cluster

    per_node = max(args.cap // 2 + 1, 1)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"kugetsu_agent": per_node},
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
        },
    )
    cluster.add_node(num_cpus=1, resources={"kugetsu_agent": per_node}, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory(prefix="kugetsu-bench-ray") as tmp:
            work = Path(tmp)
            worktree = not args.no_worktree
            local = run(work, "local", {"kind": "local"}, args.tasks, args.cap, worktree)
            remote = run(
                work, "ray", {"kind": "ray", "address": cluster.address}, args.tasks, args.cap, worktree
            )
    finally:
        cluster.shutdown()
    result = {
        "tasks": args.tasks,
        "cap": args.cap,
        "worktree": not args.no_worktree,
        "local_s": round(local, 3),
        "ray_s": round(remote, 3),
        "overhead_per_task_s": round((remote - local) / args.tasks, 3),
    }
    print(
        f"{args.tasks} tasks at cap {args.cap}: local {local:.2f}s, ray {remote:.2f}s, "
        f"+{result['overhead_per_task_s']:.3f}s per task on Ray"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
