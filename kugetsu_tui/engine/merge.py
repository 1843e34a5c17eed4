"""Land a task's branch on its base branch (or another): a merge commit, one squashed
commit, or its commits rebased on the target.

A merge never leaves anything half-done in the person's repo: the result is made in a
temporary worktree, and the target branch only moves (fast-forward where it is checked
out, a compare-and-swap of the ref where it is not) once the result exists. This module
never writes the store: control.py records what it returns.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from subprocess import CompletedProcess

from kugetsu_tui.engine import gitcmd, worktree
from kugetsu_tui.engine.discard import Removal, remove_work
from kugetsu_tui.engine.model import Task
from kugetsu_tui.engine.repolock import repo_lock
from kugetsu_tui.engine.review import ReviewError, base_of, branch_exists, commit_message, failure, repo_of
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError


class MergeConflict(ReviewError):
    """The merge would conflict; nothing was changed."""

    def __init__(self, target: str, files: list[str]) -> None:
        shown = ", ".join(one_line(f) for f in files) or "(git named no file)"
        super().__init__(f"conflict merging into {one_line(target)} in {shown}; nothing was changed")
        self.target = target
        self.files = files


class Strategy(StrEnum):
    MERGE = "merge"  # a merge commit on the target
    SQUASH = "squash"  # one new commit on the target with all of the task's changes
    REBASE = "rebase"  # the task's commits replayed on the target


@dataclass(frozen=True, slots=True)
class Merged:
    target: str
    strategy: Strategy
    commit: str  # the target's new tip
    checked_out: Path | None  # where the target is checked out (updated there), if anywhere
    already: bool  # the target had the work already: nothing moved
    removed: list[str] = field(default_factory=list)
    kept: str | None = None


def merge(task: Task, *, into: str | None, strategy: Strategy, keep: bool, scratch: Path) -> Merged:
    """Land the task's branch on its base branch (or `into`); see the module's docstring.
    UsageError for what the person must change first, MergeConflict (nothing changed) or
    ReviewError otherwise."""
    repo = repo_of(task)
    branch = _branch_to_merge(task, repo)
    target, target_tip, checked_out = _target(task, repo, into)
    result = _merged_commit(task, repo, branch, target, target_tip, strategy, scratch)
    already = result == target_tip
    if not already:
        _move_target(task, repo, target, target_tip, result, checked_out, strategy)
    removal = Removal() if keep else remove_work(task, force=False)
    return Merged(target, strategy, result, checked_out, already, removal.removed, removal.kept)


def _branch_to_merge(task: Task, repo: Path) -> str:
    """The task's branch, if it still exists and holds all of the task's work."""
    branch = task.branch
    if not branch or not branch_exists(repo, branch):
        raise UsageError(f"task {task.id} has no branch left (no changes, or discarded): nothing to merge")
    if task.worktree and Path(task.worktree).is_dir():
        pending = worktree.why_kept(Path(task.worktree), ignored=False)
        if pending is not None:
            raise UsageError(
                f"task {task.id}'s worktree {task.worktree} has uncommitted work ({pending.removeprefix('kept: ')}); "
                f"commit it there first (kugetsu shell {task.id})"
            )
    return branch


def _target(task: Task, repo: Path, into: str | None) -> tuple[str, str, Path | None]:
    """The branch to land on, its tip, and the clean worktree it is checked out in (if any)."""
    base = base_of(task)
    target = into or (base.branch if base else None)
    if not target:
        raise UsageError(
            f"task {task.id} started from a detached commit; expected --into BRANCH to say where it goes"
        )
    target_tip = gitcmd.output(["rev-parse", "--verify", "-q", f"refs/heads/{target}^{{commit}}"], repo)
    if not target_tip:
        raise UsageError(f"no branch {target!r} in {repo} (expected a local branch to merge into)")
    checked_out = checkout_of(repo, target)
    if checked_out is not None:
        dirty = gitcmd.output(["status", "--porcelain", "--untracked-files=no"], checked_out)
        if dirty is None or dirty:
            raise UsageError(
                f"{target} is checked out in {checked_out} with local changes; commit or stash them first"
            )
    return target, target_tip, checked_out


def _move_target(
    task: Task,
    repo: Path,
    target: str,
    target_tip: str,
    result: str,
    checked_out: Path | None,
    strategy: Strategy,
) -> None:
    """Point the target at the merged commit: fast-forward its checkout, or swap its ref only
    if nobody moved it meanwhile."""
    if checked_out is not None:
        moved = gitcmd.run(["merge", "--ff-only", "-q", result], checked_out)
    else:
        message = f"kugetsu: {strategy} task {task.id}"
        moved = gitcmd.run(["update-ref", "-m", message, f"refs/heads/{target}", result, target_tip], repo)
    if moved.returncode != 0:
        raise failure(
            f"task {task.id}: could not move {target} to the merged commit (nothing was changed)", moved
        )


def checkout_of(repo: Path, branch: str) -> Path | None:
    """The worktree (the main one or another) that has `branch` checked out, if any."""
    listed = gitcmd.output(["worktree", "list", "--porcelain"], repo) or ""
    where: Path | None = None
    for line in listed.splitlines():
        if line.startswith("worktree "):
            where = Path(line.removeprefix("worktree "))
            where = where if where.is_dir() else None  # a folder deleted by hand: nowhere to update
        elif line == f"branch refs/heads/{branch}" and where is not None:
            return where
    return None


def _merged_commit(
    task: Task, repo: Path, branch: str, target: str, target_tip: str, strategy: Strategy, scratch: Path
) -> str:
    """The commit the target should become, made in a temporary worktree that is removed
    whatever happens. MergeConflict names the conflicting files."""
    with repo_lock(repo):  # its worktree add and prune must not race a task's
        return _merged_commit_locked(task, repo, branch, target, target_tip, strategy, scratch)


def _merged_commit_locked(
    task: Task, repo: Path, branch: str, target: str, target_tip: str, strategy: Strategy, scratch: Path
) -> str:
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".merge-{task.id}-", dir=scratch))
    start = f"refs/heads/{branch}" if strategy is Strategy.REBASE else target_tip
    made = gitcmd.run(["worktree", "add", "--quiet", "--detach", str(tmp), start], repo)
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise failure(f"task {task.id}: could not make a worktree to merge in", made)
    try:
        done = _apply(strategy, task, branch, target_tip, tmp)
        if done.returncode != 0:
            conflicts = gitcmd.output(["diff", "--name-only", "-z", "--diff-filter=U"], tmp)
            files = [f for f in (conflicts or "").split("\0") if f]
            if files:
                raise MergeConflict(target, files)
            raise failure(f"task {task.id}: git {strategy} failed (nothing was changed)", done)
        result = gitcmd.output(["rev-parse", "HEAD"], tmp)
        if not result:
            raise ReviewError(f"task {task.id}: the merged commit could not be read (nothing was changed)")
        return result
    finally:
        if strategy is Strategy.REBASE:
            gitcmd.run(["rebase", "--abort"], tmp)
        gitcmd.run(["worktree", "remove", "--force", "--force", str(tmp)], repo)
        shutil.rmtree(tmp, ignore_errors=True)
        gitcmd.run(["worktree", "prune"], repo)


def _apply(strategy: Strategy, task: Task, branch: str, target_tip: str, tmp: Path) -> CompletedProcess[str]:
    """Run the strategy's git step in the temporary worktree `tmp`."""
    subject = commit_message(task)
    if strategy is Strategy.MERGE:
        message = f"Merge {branch}: {subject}"
        return gitcmd.run(
            ["merge", "--no-ff", "--no-verify", "-q", "-m", message, f"refs/heads/{branch}"], tmp, ident=True
        )
    if strategy is Strategy.SQUASH:
        done = gitcmd.run(["merge", "--squash", "-q", f"refs/heads/{branch}"], tmp, ident=True)
        staged = gitcmd.run(["diff", "--cached", "--quiet"], tmp).returncode != 0
        if done.returncode == 0 and staged:
            done = gitcmd.run(["commit", "-q", "--no-verify", "-m", subject], tmp, ident=True)
        return done
    return gitcmd.run(["rebase", "--no-verify", "-q", target_tip], tmp, ident=True)
