"""(3) Worktree cost: add + remove of a task's git worktree on a repo of 2,000 files,
against plain `git worktree add` + `git worktree remove` on the same repo.

Measured twice: the engine's own calls (`worktree.ensure` + `worktree.remove_unless_kept`,
which also check for stale entries and for a dirty tree), and end to end: `kugetsu run
--headless` of N `true` tasks at cap 1 in worktrees minus the same tasks with
--no-worktree, per task.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from _lib import KUGETSU, emit, fresh_home, home_env, main_args, median, say, scratch, timed

from kugetsu_tui.engine import worktree

FILES = 2000


def make_repo(path: Path, files: int) -> Path:
    path.mkdir()
    for n in range(files):
        folder = path / f"pkg{n // 50:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{n:04d}.py").write_text(f'"""Module {n}."""\n\nVALUE = {n}\n' + "# filler\n" * 20)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "files"], cwd=path, check=True)
    return path


def git_alone(repo: Path, where: Path, n: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["git", "worktree", "add", "--quiet", "-b", f"plain/{n}", str(where), "HEAD"], cwd=repo, check=True
    )
    subprocess.run(["git", "worktree", "remove", str(where)], cwd=repo, check=True)
    return time.perf_counter() - start


def engine_calls(repo: Path, where: Path, n: int) -> float:
    start = time.perf_counter()
    worktree.ensure(repo, where, f"kugetsu/{n}")
    if worktree.remove_unless_kept(repo, where) is not None:
        raise SystemExit(f"worktree {where} was not removed")
    return time.perf_counter() - start


def end_to_end(repo: Path, work: Path, tasks: int, in_worktree: bool) -> float:
    home = fresh_home(work, 1, {"bench": ["true"]}, "bench")
    env = home_env(home)
    spec = {"repo": str(repo), "no_worktree": not in_worktree}
    lines = "".join(json.dumps({"prompt": f"t{n}", **spec}) + "\n" for n in range(tasks))
    (work / "tasks.jsonl").write_text(lines)
    timed([*KUGETSU, "add", "--from-file", str(work / "tasks.jsonl")], env=env)
    return timed([*KUGETSU, "run", "--headless"], env=env)


def main() -> None:
    args = main_args(__doc__ or "")
    rounds = 5 if args.quick else 10
    tasks = 4 if args.quick else 10
    say(f"worktree: add+remove on a repo of {FILES} files, {rounds} rounds; end to end {tasks} tasks")
    with scratch("worktree") as work:
        repo = make_repo(work / "repo", FILES)
        git_s, engine_s = [], []
        for n in range(rounds):
            git_s.append(git_alone(repo, work / f"plain-{n}", n))
            engine_s.append(engine_calls(repo, work / f"kugetsu-{n}", n))
        e2e_with, e2e_without = [], []
        for _ in range(args.rounds):
            e2e_with.append(end_to_end(repo, work, tasks, True))
            e2e_without.append(end_to_end(repo, work, tasks, False))
    git_ms, engine_ms = median(git_s) * 1000, median(engine_s) * 1000
    e2e_ms = (median(e2e_with) - median(e2e_without)) / tasks * 1000
    say(f"  git alone      {git_ms:6.1f} ms per add+remove")
    say(f"  engine calls   {engine_ms:6.1f} ms  (x{engine_ms / git_ms:.2f} of git)")
    say(f"  end to end     {e2e_ms:6.1f} ms per task  (x{e2e_ms / git_ms:.2f} of git)")
    emit(
        args,
        "worktree",
        {
            "files": FILES,
            "rounds": rounds,
            "git_ms": git_ms,
            "engine_ms": engine_ms,
            "engine_ratio": engine_ms / git_ms,
            "e2e_tasks": tasks,
            "e2e_ms_per_task": e2e_ms,
            "e2e_ratio": e2e_ms / git_ms,
        },
    )


if __name__ == "__main__":
    main()
