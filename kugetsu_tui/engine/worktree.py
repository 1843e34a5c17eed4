"""Give a task its own git worktree, and take it away when the task is done.

A task's worktree lives at `KUGETSU_HOME/worktrees/<id>` on a branch `kugetsu/<id>`
started from the repo's current HEAD. It is made at the first attempt and reused by
retries, so partial work is kept. After the task settles, a clean worktree is removed
(the branch stays); a dirty one is kept for the person to look at.

Blocking calls: the supervisor runs them in a thread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from kugetsu_tui.errors import UsageError


class WorktreeError(Exception):
    pass


def _git(args: list[str], cwd: Path | str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (FileNotFoundError, NotADirectoryError):
        if Path(cwd).is_dir():
            raise  # no git at all: not a failure of this one repo
        # The repo (or worktree) was deleted while tasks still name it: git's own kind of failure.
        return subprocess.CompletedProcess(["git", *args], 128, "", f"{cwd} does not exist any more")


def repo_root(path: Path) -> Path:
    """The top of the git work tree that holds path; UsageError if it is not in one."""
    if not path.is_dir():
        raise UsageError(f"repo {path} does not exist (expected a directory inside a git repository)")
    found = _git(["rev-parse", "--show-toplevel"], path)
    if found.returncode != 0:
        raise UsageError(
            f"{path} is not inside a git repository (expected --repo PATH of a git repo, "
            "or --no-worktree to run in that folder)"
        )
    return Path(found.stdout.strip())


def ensure(repo: Path, where: Path, branch: str, existing: str | None = None, base: str | None = None) -> str:
    """Make (or reuse) the worktree at `where`; returns the branch name used.

    `existing` is the task's branch from an earlier attempt: a requeued task whose clean
    worktree was removed gets it checked out again, so its history carries on."""
    if (where / ".git").exists():
        found = _git(["rev-parse", "--abbrev-ref", "HEAD"], where)
        return found.stdout.strip() or branch
    _git(["worktree", "prune"], repo)  # forget worktrees whose folders were deleted by hand
    if existing:
        made = _git(["worktree", "add", "--quiet", str(where), existing], repo)
        if made.returncode == 0:
            return existing
    name = branch
    for n in range(1, 100):
        made = _git(["worktree", "add", "--quiet", "-b", name, str(where), base or "HEAD"], repo)
        if made.returncode == 0:
            return name
        if base and "invalid reference" in made.stderr:
            raise WorktreeError(f"worktree base {base!r} is not a branch or commit of {repo}")
        if "already exists" not in made.stderr or (where.exists() and any(where.iterdir())):
            raise WorktreeError(f"git worktree add failed: {made.stderr.strip()}")
        # A branch of that name is left from an earlier home: never reuse someone's work.
        name = f"{branch}-{n + 1}"
    raise WorktreeError(f"git worktree add failed: no free branch name like {branch}")


def is_clean(where: Path) -> bool:
    found = _git(["status", "--porcelain", "--untracked-files=normal"], where)
    return found.returncode == 0 and not found.stdout.strip()


def remove_if_clean(repo: Path, where: Path) -> bool:
    """Remove a clean worktree (the branch stays). False if it is dirty or already gone.

    `git worktree remove` (without --force) itself refuses a tree with modified or
    untracked files, by the same `git status` as is_clean: asking first would run that
    status twice for every task."""
    if not where.exists():
        return False
    done = _git(["worktree", "remove", str(where)], repo)
    return done.returncode == 0


def run_setup(
    command: Sequence[str], where: Path, log: Path, started: Callable[[int], None] = lambda pid: None
) -> str | None:
    """Run `[worktree] setup` in a fresh worktree, its output appended to the task's log.
    None on success, else why it failed (the attempt's reason). It runs in a process group
    of its own, whose id goes to `started`, so that a cancel can end it at once."""
    with open(log, "ab") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(f"--- kugetsu: worktree setup: {' '.join(command)} ---\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                list(command),
                cwd=where,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            return f"worktree setup {command[0]!r} could not start: {err.strerror}"
        started(proc.pid)
        code = proc.wait()
    if code != 0:
        return f"worktree setup {' '.join(command)!r} failed with exit code {code}"
    return None
