"""Review a task's work: commit it when its attempt succeeded, measure and diff it against
where it started. Landing it is merge.py's job; removing what is left of it (discard, gc,
after a merge) is discard.py's.

Owns the task's base (Base, base_of), its commit (commit_work, settle_worktree) and the
read side of its changes (measure, diff, untracked). This module never writes the store:
control.py and the supervisor record what it returns.

Blocking calls (git): the supervisor runs settle_worktree in a thread.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import gitcmd, worktree
from kugetsu_tui.engine.model import Changes, State, Task
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError

SUBJECT_CHARS = 72


class ReviewError(Exception):
    """A git step failed for a reason that is not the person's input (exit 1)."""


def failure(what: str, done: subprocess.CompletedProcess[str]) -> ReviewError:
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
    commit = gitcmd.output(["merge-base", task.branch, start], task.repo)
    if not commit:
        return None
    full = gitcmd.output(["rev-parse", "--symbolic-full-name", start], task.repo) or ""
    return Base(commit, full.removeprefix("refs/heads/") if full.startswith("refs/heads/") else None)


def branch_exists(repo: Path | str, branch: str | None) -> bool:
    return (
        bool(branch)
        and gitcmd.run(["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], repo).returncode == 0
    )


def measure(repo: Path | str, branch: str, base: str) -> Changes | None:
    """The branch's changes against base: files, lines added and removed, commits."""
    numstat = gitcmd.output(["diff", "--numstat", "-z", "--no-renames", base, f"refs/heads/{branch}"], repo)
    count = gitcmd.output(["rev-list", "--count", f"{base}..refs/heads/{branch}"], repo)
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
    added = gitcmd.run(["add", "-A", "--", ".", *exclude], where)
    if added.returncode != 0:
        raise failure(f"task {task.id}: git add failed", added)
    if gitcmd.run(["diff", "--cached", "--quiet"], where).returncode == 0:
        return False  # nothing staged
    done = gitcmd.run(["commit", "-q", "--no-verify", "-m", commit_message(task)], where, ident=True)
    if done.returncode != 0:
        raise failure(f"task {task.id}: git commit failed", done)
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
    empty = kept is None and changes is not None and changes.commits == 0
    branch_removed = empty and base is not None and _drop_branch(repo, task.branch, base.commit)
    return Settled(base, changes, committed, kept, branch_removed, error)


def _drop_branch(repo: Path, branch: str | None, start: str) -> bool:
    """Delete an empty task's branch, only if it still points where it started (nobody
    committed on it meanwhile). Whether it went."""
    if not branch:
        return False
    deleted = gitcmd.run(["update-ref", "-d", f"refs/heads/{branch}", start], repo)
    return deleted.returncode == 0


# --- diff ----------------------------------------------------------------------------------


def diff(task: Task, *, stat: bool = False) -> str:
    """What the task changed against where it started: its worktree as it is now (what it
    committed, its uncommitted changes and the new files it made, not ignored ones nor
    setup's), or its branch when the worktree is gone."""
    repo = repo_of(task)
    base = base_of(task)
    if base is None:
        raise UsageError(f"task {task.id} has no recorded base and no branch left to compare")
    options = ["diff", "--no-color", "--no-ext-diff"] + (["--stat"] if stat else [])
    where = Path(task.worktree) if task.worktree else None
    if where is not None and (where / ".git").is_file():
        done = _worktree_diff(options, base.commit, where)
    elif branch_exists(repo, task.branch):
        done = gitcmd.run([*options, base.commit, f"refs/heads/{task.branch}"], repo)
    elif task.changes is not None and task.changes.empty:
        return ""  # it changed nothing, and its branch went with its worktree
    else:
        raise UsageError(f"task {task.id} has no branch or worktree left (no changes, or discarded)")
    if done.returncode != 0:
        raise failure(f"task {task.id}: git diff failed", done)
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


def _worktree_diff(options: list[str], base: str, where: Path) -> subprocess.CompletedProcess[str]:
    """`git diff BASE` in the worktree, its new files shown as added: they are marked
    intent-to-add in a copy of its index, so its own index stays as the agent left it."""
    new = _untracked(where)
    index = Path(gitcmd.output(["rev-parse", "--absolute-git-dir"], where) or where, "index")
    if not new or not index.is_file():  # no index: git would take every tracked file for deleted
        return gitcmd.run([*options, base], where)
    with tempfile.TemporaryDirectory(prefix="kugetsu-diff-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp, "index")), "GIT_LITERAL_PATHSPECS": "1"}
        shutil.copyfile(index, env["GIT_INDEX_FILE"])
        paths = Path(tmp, "paths")
        paths.write_text("\0".join(new) + "\0")
        marked = gitcmd.run(
            ["add", "--intent-to-add", f"--pathspec-from-file={paths}", "--pathspec-file-nul"], where, env=env
        )
        if marked.returncode != 0:
            raise failure(f"{where}: could not list its new files in the diff", marked)
        return gitcmd.run([*options, base], where, env=env)


def _untracked(where: Path) -> list[str]:
    """New files in a worktree, not ignored ones nor what `[worktree] setup` made."""
    found = gitcmd.run(["ls-files", "--others", "--exclude-standard", "-z"], where)
    setup = set(worktree.setup_untracked(where))
    return [p for p in found.stdout.split("\0") if p and p not in setup] if found.returncode == 0 else []


def repo_of(task: Task) -> Path:
    if task.no_worktree or not task.repo:
        raise UsageError(f"task {task.id} ran without a worktree (--no-worktree): it has no branch to review")
    repo = Path(task.repo)
    if not repo.is_dir():
        raise UsageError(f"task {task.id}'s repo {repo} does not exist any more")
    return repo
