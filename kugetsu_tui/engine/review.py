"""Review a task's work: commit it when its attempt succeeded, diff it against where it
started, merge it, discard it, and collect what is left of reviewed and empty tasks (gc).

Owns every git command on a task's branch once its attempt has ended. A merge never
leaves anything half-done in the person's repo: the result is made in a temporary
worktree, and the target branch only moves (fast-forward where it is checked out, a
compare-and-swap of the ref where it is not) once the result exists. This module never
writes the store: control.py and the supervisor record what it returns.

Blocking calls (git): the supervisor runs settle_worktree in a thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import worktree
from kugetsu_tui.engine.model import Changes, State, Task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError

# Commits made here need no editor, no signing key and no hook of the person's repo;
# messages are parsed in one language.
_GIT_ENV = {"GIT_EDITOR": "true", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_GIT_OPTIONS = ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
_FALLBACK_IDENT = ["-c", "user.name=kugetsu", "-c", "user.email=kugetsu@localhost"]
SUBJECT_CHARS = 72


class ReviewError(Exception):
    """A git step failed for a reason that is not the person's input (exit 1)."""


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


def _git(args: list[str], cwd: Path | str, *, ident: bool = False) -> subprocess.CompletedProcess[str]:
    options = list(_GIT_OPTIONS)
    if ident and not _has_ident(cwd):
        options += _FALLBACK_IDENT
    return subprocess.run(
        ["git", *options, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **_GIT_ENV},
        check=False,
    )


def _has_ident(cwd: Path | str) -> bool:
    """Whether git knows who commits here (config or environment)."""
    found = subprocess.run(
        ["git", "var", "GIT_COMMITTER_IDENT"], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL
    )
    return found.returncode == 0


def _out(args: list[str], cwd: Path | str) -> str | None:
    done = _git(args, cwd)
    return done.stdout.strip() if done.returncode == 0 else None


def _fail(what: str, done: subprocess.CompletedProcess[str]) -> ReviewError:
    said = one_line(done.stderr or done.stdout) or f"exit code {done.returncode}"
    return ReviewError(f"{what}: {said}")


# --- where a task started and what it changed ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Base:
    commit: str
    branch: str | None  # None: it started from a detached commit


def base_of(task: Task) -> Base | None:
    """Where the task's branch started: as its worktree recorded it (a requeued task whose
    empty branch went may have started again, elsewhere), else as the store recorded it,
    else the fork point of its branch from what it was asked to start on."""
    if task.worktree:
        recorded = worktree.recorded_base(Path(task.worktree))
        if recorded is not None:
            return Base(*recorded)
    if task.base_commit:
        return Base(task.base_commit, task.base_branch)
    if not task.repo or not task.branch or not Path(task.repo).is_dir():
        return None
    start = task.base or "HEAD"
    commit = _out(["merge-base", task.branch, start], task.repo)
    if not commit:
        return None
    full = _out(["rev-parse", "--symbolic-full-name", start], task.repo) or ""
    return Base(commit, full.removeprefix("refs/heads/") if full.startswith("refs/heads/") else None)


def branch_exists(repo: Path | str, branch: str | None) -> bool:
    return (
        bool(branch) and _git(["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], repo).returncode == 0
    )


def measure(repo: Path | str, branch: str, base: str) -> Changes | None:
    """The branch's changes against base: files, lines added and removed, commits."""
    numstat = _out(["diff", "--numstat", "-z", "--no-renames", base, f"refs/heads/{branch}"], repo)
    count = _out(["rev-list", "--count", f"{base}..refs/heads/{branch}"], repo)
    if numstat is None or count is None:
        return None
    files = insertions = deletions = 0
    for entry in numstat.split("\0"):
        parts = entry.split("\t")
        if len(parts) < 3:
            continue
        files += 1
        insertions += int(parts[0]) if parts[0].isdigit() else 0  # "-": a binary file
        deletions += int(parts[1]) if parts[1].isdigit() else 0
    return Changes(files, insertions, deletions, int(count))


def commit_message(task: Task) -> str:
    """The prompt's first line (printable, one line, cut short), then "kugetsu task N"."""
    first = next((line for line in task.prompt.splitlines() if line.strip()), "")
    subject = one_line(first)
    if len(subject) > SUBJECT_CHARS:
        subject = subject[: SUBJECT_CHARS - 1] + "…"
    return f"{subject}\n\nkugetsu task {task.id}" if subject else f"kugetsu task {task.id}"


def commit_work(task: Task, where: Path) -> bool:
    """Commit everything the agent left in its worktree (not ignored files, not what
    `[worktree] setup` made) on the task's branch. True when a commit was made."""
    exclude = [f":(exclude,literal){path}" for path in worktree.setup_untracked(where)]
    added = _git(["add", "-A", "--", ".", *exclude], where)
    if added.returncode != 0:
        raise _fail(f"task {task.id}: git add failed", added)
    if _git(["diff", "--cached", "--quiet"], where).returncode == 0:
        return False  # nothing staged
    done = _git(["commit", "-q", "--no-verify", "-m", commit_message(task)], where, ident=True)
    if done.returncode != 0:
        raise _fail(f"task {task.id}: git commit failed", done)
    return True


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of a settled task's worktree and branch."""

    base: Base | None
    changes: Changes | None
    committed: bool = False
    kept: str | None = None  # why the worktree stays (None: it was removed)
    branch_removed: bool = False  # it changed nothing: its branch went with its worktree
    error: str | None = None

    @property
    def no_changes(self) -> bool:
        return self.branch_removed

    def columns(self, task: Task) -> dict[str, Any]:
        """The task's columns to store."""
        cols: dict[str, Any] = {"review": "unreviewed"}  # new work: nobody has looked at it yet
        if self.base is not None:
            cols |= {"base_commit": self.base.commit, "base_branch": self.base.branch}
        if self.changes is not None:
            cols |= {
                "files_changed": self.changes.files,
                "insertions": self.changes.insertions,
                "deletions": self.changes.deletions,
                "commits": self.changes.commits,
            }
        if self.kept is None:
            cols["worktree"] = None
        if self.branch_removed:
            cols["branch"] = None
        if task.state is State.SUCCEEDED:  # a failure keeps its own reason
            note = "no changes" if self.no_changes else self.kept or self.error
            if note:
                cols["reason"] = note
        return cols


def settle_worktree(task: Task, *, commit: bool) -> Settled:
    """After a task settled: commit a successful attempt's work (if `commit`), measure the
    branch against its base, remove the worktree unless something uncommitted or ignored
    is in it, and remove the branch too when the task changed nothing."""
    assert task.repo is not None and task.worktree is not None
    repo, where = Path(task.repo), Path(task.worktree)
    if not repo.is_dir():  # deleted while the task ran: git can do nothing more here
        return Settled(None, None, kept="kept: its repo is gone" if where.exists() else None)
    base = base_of(task)
    committed, error = False, None
    if commit and task.state is State.SUCCEEDED and where.is_dir():
        try:
            committed = commit_work(task, where)
        except ReviewError as err:
            error = f"kept: {err}"
    changes = measure(repo, task.branch, base.commit) if base and task.branch else None
    kept = worktree.remove_unless_kept(repo, where)
    branch_removed = False
    if kept is None and changes is not None and changes.commits == 0 and task.branch:
        # Only if the branch still points where it started (nobody committed meanwhile).
        assert base is not None
        deleted = _git(["update-ref", "-d", f"refs/heads/{task.branch}", base.commit], repo)
        branch_removed = deleted.returncode == 0
    return Settled(base, changes, committed, kept, branch_removed, error)


# --- diff ----------------------------------------------------------------------------------


def diff(task: Task, *, stat: bool = False) -> str:
    """What the task changed against where it started: its worktree as it is now (committed
    and uncommitted changes to tracked files), or its branch when the worktree is gone."""
    repo = _repo_of(task)
    base = base_of(task)
    if base is None:
        raise UsageError(f"task {task.id} has no recorded base and no branch left to compare")
    options = ["diff", "--no-color", "--no-ext-diff"] + (["--stat"] if stat else [])
    where = Path(task.worktree) if task.worktree else None
    if where is not None and (where / ".git").is_file():
        done = _git([*options, base.commit], where)
    elif branch_exists(repo, task.branch):
        done = _git([*options, base.commit, f"refs/heads/{task.branch}"], repo)
    elif task.changes is not None and task.changes.empty:
        return ""  # it changed nothing, and its branch went with its worktree
    else:
        raise UsageError(f"task {task.id} has no branch or worktree left (no changes, or discarded)")
    if done.returncode != 0:
        raise _fail(f"task {task.id}: git diff failed", done)
    return done.stdout


@dataclass(frozen=True, slots=True)
class FileDiff:
    """One file's part of a unified diff."""

    path: str
    added: int
    removed: int
    text: str


def split_diff(text: str) -> list[FileDiff]:
    """A `git diff` cut into its files, each with its lines added and removed."""
    files: list[FileDiff] = []
    for part in ("\n" + text).split("\ndiff --git ")[1:]:
        body = "diff --git " + part
        lines = body.splitlines()
        path = next((line[6:] for line in lines if line.startswith("+++ b/")), "")
        if not path:  # deleted, or binary: the name from the header (a/NAME b/NAME)
            path = lines[0].removeprefix("diff --git a/").split(" b/", 1)[0]
        start = next((n for n, line in enumerate(lines) if line.startswith("@@")), len(lines))
        hunks = lines[start:]  # past the headers, a "--- x" line is a removed "-- x"
        added = sum(1 for line in hunks if line.startswith("+"))
        removed = sum(1 for line in hunks if line.startswith("-"))
        files.append(FileDiff(path, added, removed, body if body.endswith("\n") else body + "\n"))
    return files


def untracked(task: Task) -> list[str]:
    """New files in the task's worktree that a diff does not show (not yet committed)."""
    if not task.worktree or not (Path(task.worktree) / ".git").is_file():
        return []
    found = _out(["ls-files", "--others", "--exclude-standard", "-z"], task.worktree) or ""
    setup = set(worktree.setup_untracked(Path(task.worktree)))
    return [p for p in found.split("\0") if p and p not in setup]


def _repo_of(task: Task) -> Path:
    if task.no_worktree or not task.repo:
        raise UsageError(f"task {task.id} ran without a worktree (--no-worktree): it has no branch to review")
    repo = Path(task.repo)
    if not repo.is_dir():
        raise UsageError(f"task {task.id}'s repo {repo} does not exist any more")
    return repo


# --- merge -----------------------------------------------------------------------------------


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
    repo = _repo_of(task)
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
    base = base_of(task)
    target = into or (base.branch if base else None)
    if not target:
        raise UsageError(
            f"task {task.id} started from a detached commit; expected --into BRANCH to say where it goes"
        )
    target_tip = _out(["rev-parse", "--verify", "-q", f"refs/heads/{target}^{{commit}}"], repo)
    if not target_tip:
        raise UsageError(f"no branch {target!r} in {repo} (expected a local branch to merge into)")
    checked_out = checkout_of(repo, target)
    if checked_out is not None:
        dirty = _out(["status", "--porcelain", "--untracked-files=no"], checked_out)
        if dirty is None or dirty:
            raise UsageError(
                f"{target} is checked out in {checked_out} with local changes; commit or stash them first"
            )
    result = _merged_commit(task, repo, branch, target, target_tip, strategy, scratch)
    already = result == target_tip
    if not already:
        if checked_out is not None:
            moved = _git(["merge", "--ff-only", "-q", result], checked_out)
        else:
            message = f"kugetsu: {strategy} task {task.id}"
            moved = _git(["update-ref", "-m", message, f"refs/heads/{target}", result, target_tip], repo)
        if moved.returncode != 0:
            raise _fail(
                f"task {task.id}: could not move {target} to the merged commit (nothing was changed)", moved
            )
    removed, kept = ([], None) if keep else remove_work(task, force=False)
    return Merged(target, strategy, result, checked_out, already, removed, kept)


def checkout_of(repo: Path, branch: str) -> Path | None:
    """The worktree (the main one or another) that has `branch` checked out, if any."""
    listed = _out(["worktree", "list", "--porcelain"], repo) or ""
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
    with worktree.repo_lock(repo):  # its worktree add and prune must not race a task's
        return _merged_commit_locked(task, repo, branch, target, target_tip, strategy, scratch)


def _merged_commit_locked(
    task: Task, repo: Path, branch: str, target: str, target_tip: str, strategy: Strategy, scratch: Path
) -> str:
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".merge-{task.id}-", dir=scratch))
    start = f"refs/heads/{branch}" if strategy is Strategy.REBASE else target_tip
    made = _git(["worktree", "add", "--quiet", "--detach", str(tmp), start], repo)
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _fail(f"task {task.id}: could not make a worktree to merge in", made)
    try:
        subject = commit_message(task)
        if strategy is Strategy.MERGE:
            message = f"Merge {branch}: {subject}"
            done = _git(
                ["merge", "--no-ff", "--no-verify", "-q", "-m", message, f"refs/heads/{branch}"],
                tmp,
                ident=True,
            )
        elif strategy is Strategy.SQUASH:
            done = _git(["merge", "--squash", "-q", f"refs/heads/{branch}"], tmp, ident=True)
            staged = _git(["diff", "--cached", "--quiet"], tmp).returncode != 0
            if done.returncode == 0 and staged:
                done = _git(["commit", "-q", "--no-verify", "-m", subject], tmp, ident=True)
        else:
            done = _git(["rebase", "--no-verify", "-q", target_tip], tmp, ident=True)
        if done.returncode != 0:
            conflicts = _out(["diff", "--name-only", "-z", "--diff-filter=U"], tmp)
            files = [f for f in (conflicts or "").split("\0") if f]
            if files:
                raise MergeConflict(target, files)
            raise _fail(f"task {task.id}: git {strategy} failed (nothing was changed)", done)
        result = _out(["rev-parse", "HEAD"], tmp)
        if not result:
            raise ReviewError(f"task {task.id}: the merged commit could not be read (nothing was changed)")
        return result
    finally:
        if strategy is Strategy.REBASE:
            _git(["rebase", "--abort"], tmp)
        _git(["worktree", "remove", "--force", "--force", str(tmp)], repo)
        shutil.rmtree(tmp, ignore_errors=True)
        _git(["worktree", "prune"], repo)


# --- discard and gc ---------------------------------------------------------------------------


def remove_work(task: Task, *, force: bool) -> tuple[list[str], str | None]:
    """Remove the task's worktree and branch: what was removed, and why the worktree stays
    if it does. Without force a worktree with anything uncommitted or ignored in it stays
    (and its branch with it, which git will not delete while checked out)."""
    repo = Path(task.repo) if task.repo else None
    if repo is None or not repo.is_dir():
        return [], None
    removed: list[str] = []
    where = Path(task.worktree) if task.worktree else None
    if where is not None and (where.exists() or where.is_symlink()):
        kept = None if force else worktree.why_kept(where)
        if kept is not None:
            return removed, kept
        done = _git(["worktree", "remove", "--force", "--force", str(where)], repo)
        if done.returncode != 0 and (where / ".git").is_file():
            return removed, f"kept: git worktree remove failed: {one_line(done.stderr)}"
        if where.exists():
            shutil.rmtree(where, ignore_errors=True)  # a folder of ours that git had forgotten
        removed.append(f"worktree {where}")
    if where is not None:
        where.with_name(f"{where.name}.owner").unlink(missing_ok=True)
    _git(["worktree", "prune"], repo)
    if task.branch and branch_exists(repo, task.branch):
        done = _git(["branch", "-D", task.branch], repo)
        if done.returncode != 0:
            return removed, f"kept: git branch -D failed: {one_line(done.stderr)}"
        removed.append(f"branch {task.branch}")
    return removed, None


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
    ahead = _out(["rev-list", "--count", f"{base.commit}..refs/heads/{task.branch}"], task.repo)
    return ahead == "0"
