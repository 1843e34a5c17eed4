"""Remove what is left of a task's work: its worktree and its branch, when a person
discards it, after a merge, and when gc collects reviewed and empty tasks (is_empty).

Without force nothing of the agent's is deleted: a worktree with anything uncommitted or
ignored in it stays, with the reason. This module never writes the store: control.py
records what it returns.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kugetsu_tui.engine import gitcmd, worktree
from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.repolock import repo_lock
from kugetsu_tui.engine.review import base_of, branch_exists
from kugetsu_tui.engine.text import one_line


@dataclass(frozen=True, slots=True)
class Removal:
    """What remove_work removed of a task, and why what is left stays."""

    worktree: str | None = None  # the folder removed
    branch: str | None = None  # the branch deleted ...
    commit: str | None = None  # ... and where it pointed (git branch NAME COMMIT brings it back)
    kept: str | None = None  # why the worktree (or the branch) stays; None: nothing of it is left

    @property
    def removed(self) -> list[str]:
        """What went, in words: "worktree PATH", "branch NAME"."""
        return [
            f"{kind} {name}" for kind, name in (("worktree", self.worktree), ("branch", self.branch)) if name
        ]


def remove_work(task: Task, *, force: bool) -> Removal:
    """Remove the task's worktree and branch. Without force a worktree with anything
    uncommitted or ignored in it stays (and its branch with it, which git will not delete
    while checked out)."""
    repo = Path(task.repo) if task.repo else None
    if repo is None or not repo.is_dir():
        return Removal()
    folder: str | None = None
    with repo_lock(repo):  # its prune must not race another task's worktree add
        where = Path(task.worktree) if task.worktree else None
        if where is not None:
            gone, kept = _remove_worktree(repo, where, force=force)
            if kept is not None:
                return Removal(kept=kept)
            folder = str(where) if gone else None
        gitcmd.run(["worktree", "prune"], repo)
    branch = task.branch if task.branch and branch_exists(repo, task.branch) else None
    if branch is None:
        return Removal(folder)
    commit = gitcmd.output(["rev-parse", f"refs/heads/{branch}"], repo)
    done = gitcmd.run(["branch", "-D", branch], repo)
    if done.returncode != 0:
        return Removal(folder, kept=f"kept: git branch -D failed: {one_line(done.stderr)}")
    return Removal(folder, branch, commit)


def _remove_worktree(repo: Path, where: Path, *, force: bool) -> tuple[bool, str | None]:
    """Remove the worktree folder at `where` (and its owner file): whether a folder was
    there, and why it stays if it does."""
    if where.exists() or where.is_symlink():
        kept = None if force else worktree.why_kept(where)
        if kept is not None:
            return False, kept
        done = gitcmd.run(["worktree", "remove", "--force", "--force", str(where)], repo)
        if done.returncode != 0 and (where / ".git").is_file():
            return False, f"kept: git worktree remove failed: {one_line(done.stderr)}"
        if where.exists():
            shutil.rmtree(where, ignore_errors=True)  # a folder of ours that git had forgotten
        gone = True
    else:
        gone = False
    where.with_name(f"{where.name}.owner").unlink(missing_ok=True)
    return gone, None


def is_empty(task: Task) -> bool:
    """A settled task whose branch holds nothing beyond its base and whose worktree (if
    any) holds nothing of the agent's: what is left of it can go."""
    if not task.repo or not Path(task.repo).is_dir():
        return False
    if task.worktree and Path(task.worktree).exists() and worktree.why_kept(Path(task.worktree)) is not None:
        return False
    if not branch_exists(task.repo, task.branch):
        return True
    base = base_of(task)
    if base is None or task.branch is None:
        return False
    ahead = gitcmd.output(["rev-list", "--count", f"{base.commit}..refs/heads/{task.branch}"], task.repo)
    return ahead == "0"
