"""Give a task its own git worktree, and take it away when the task is done.

A task's worktree lives at `KUGETSU_HOME/worktrees/<id>` on a branch `kugetsu/<id>`
started from the repo's current HEAD. It is made at the first attempt and reused by
retries, so partial work is kept; where its branch started is recorded in the worktree's
git folder (recorded_base). After the task settles (review.settle_worktree commits a
success's work first), a worktree that holds no output is removed; one with changes, new
untracked files or new ignored files (an agent's build output, results under an ignored
`out/`) is kept for the person to look at, with a reason that says what is in it. Files
`[worktree] setup` made are not output.

Blocking calls: the supervisor runs them in a thread.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from kugetsu_tui.engine.repolock import repo_lock
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


# Who a worktree was made for: the task's owner token (its id and when it was created),
# so that a task never works in a folder made for another (a task of a database that was
# set aside, or deleted, had the same id). Kept beside the folder (`worktrees/<id>.owner`)
# and written before `git worktree add`, so a supervisor killed while git makes the
# worktree leaves one that its task still recognises.


def owner_token(task_id: int, created_at: float) -> str:
    """What tells a task apart from every other task of the same id in this home's past."""
    return f"{task_id}@{created_at!r}"


def ensure(
    repo: Path,
    where: Path,
    branch: str,
    existing: str | None = None,
    base: str | None = None,
    owner: str = "",
) -> str:
    """Make (or reuse) the worktree at `where` for the task `owner`; returns the branch used."""
    with repo_lock(repo):
        return _ensure(repo, where, branch, existing, base, owner)


def _ensure(repo: Path, where: Path, branch: str, existing: str | None, base: str | None, owner: str) -> str:
    """(ensure, under the repo's lock.)

    `existing` is the task's branch from an earlier attempt: a requeued task whose clean
    worktree was removed gets it checked out again, so its history carries on. A folder
    already at `where` is reused only if it was made for this task; a branch of the name
    wanted that already exists is never taken over (the task gets `<branch>-2`, …)."""
    if where.is_dir() and not where.is_symlink() and not any(where.iterdir()):
        where.rmdir()  # an empty folder holds nobody's work (git may leave one when killed)
    if where.exists() or where.is_symlink():
        return _reuse(where, existing, owner)
    claim = _owner_file(where)
    claim.write_text(owner)
    claim.chmod(0o600)
    _git(["worktree", "prune"], repo)  # forget worktrees whose folders were deleted by hand
    if existing:
        made = _git(["worktree", "add", "--quiet", str(where), existing], repo)
        if made.returncode == 0:
            return existing
    return _add_with_new_branch(repo, where, branch, base)


def _add_with_new_branch(repo: Path, where: Path, branch: str, base: str | None) -> str:
    """`git worktree add -b`, under the first free name of `branch`, `branch-2`, …"""
    name = branch
    retries = 3
    for n in range(1, 100):
        made = _git(["worktree", "add", "--quiet", "-b", name, str(where), base or "HEAD"], repo)
        while made.returncode != 0 and retries and ".lock" in made.stderr and not where.exists():
            # Another git of this repo (a task settling: its commit, its branch removed) held
            # a lock for a moment: try again rather than fail the attempt.
            retries -= 1
            time.sleep(0.05)
            made = _git(["worktree", "add", "--quiet", "-b", name, str(where), base or "HEAD"], repo)
        if made.returncode == 0:
            _record_base(repo, where, base)
            return name
        if base and "invalid reference" in made.stderr:
            raise WorktreeError(f"worktree base {base!r} is not a branch or commit of {repo}")
        if "already exists" not in made.stderr or where.exists():
            raise WorktreeError(f"git worktree add failed: {made.stderr.strip()}")
        # A branch of that name is left from an earlier home: never reuse someone's work.
        name = f"{branch}-{n + 1}"
    raise WorktreeError(f"git worktree add failed: no free branch name like {branch}")


def _owner_file(where: Path) -> Path:
    return where.with_name(f"{where.name}.owner")


def _reuse(where: Path, existing: str | None, owner: str) -> str:
    """The branch of the worktree already at `where`, if it was made for this task."""
    refuse = WorktreeError(
        f"{where} exists but was not made for this task (left from an earlier state database?); "
        "expected no folder there: move it away"
    )
    if not (where / ".git").is_file() or _git_dir(where) is None:
        raise refuse
    head = _git(["rev-parse", "--abbrev-ref", "HEAD"], where).stdout.strip()
    try:
        made_for = _owner_file(where).read_text()
    except FileNotFoundError:
        # Made before worktrees had owners: the task's own if it is on the task's branch.
        if not existing or head != existing:
            raise refuse from None
        return head
    if made_for != owner:
        raise refuse
    return head or existing or ""


# Where a task's branch started (its commit, then the branch or "" for a detached commit),
# kept in the worktree's own git folder until the task settles and the store records it.
BASE_RECORD = "kugetsu-base"


def _record_base(repo: Path, where: Path, base: str | None) -> None:
    commit = _git(["rev-parse", "HEAD"], where).stdout.strip()
    if base:
        full = _git(["rev-parse", "--symbolic-full-name", base], repo).stdout.strip()
        branch = full.removeprefix("refs/heads/") if full.startswith("refs/heads/") else ""
    else:
        branch = _git(["symbolic-ref", "-q", "--short", "HEAD"], repo).stdout.strip()
    git_dir = _git_dir(where)
    if commit and git_dir is not None:
        (git_dir / BASE_RECORD).write_text(f"{commit}\n{branch}\n")


def recorded_base(where: Path) -> tuple[str, str | None] | None:
    """(commit, branch or None) the worktree's branch started from, if ensure() recorded it."""
    git_dir = _git_dir(where) if (where / ".git").is_file() else None
    if git_dir is None:
        return None
    try:
        commit, branch, *_ = (git_dir / BASE_RECORD).read_text().split("\n")
    except (OSError, ValueError):
        return None
    return (commit, branch or None) if commit else None


def repair(where: Path) -> None:
    """Tell git where a worktree folder moved to (best effort: the repo may be gone)."""
    if (where / ".git").is_file():
        _git(["worktree", "repair"], where)


# What `[worktree] setup` left in a fresh worktree (untracked and ignored entries of
# `git status`), kept in the worktree's own git folder: not the agent's output.
SETUP_BASELINE = "kugetsu-setup-output"


def _status(where: Path) -> list[tuple[str, str]] | None:
    """(code, path) of every change, untracked and ignored entry (an untracked or ignored
    folder is one entry), or None when git cannot tell."""
    # `matching`: an ignored folder is one entry, and git does not walk into it.
    found = _git(["status", "--porcelain=v1", "-z", "--ignored=matching", "--untracked-files=normal"], where)
    if found.returncode != 0:
        return None
    entries: list[tuple[str, str]] = []
    words = iter(found.stdout.split("\0"))
    for word in words:
        if len(word) < 4:
            continue
        code, path = word[:2], word[3:]
        if code[0] in "RC":
            next(words, None)  # a rename or copy: its source path follows
        entries.append((code, path))
    return entries


def _git_dir(where: Path) -> Path | None:
    found = _git(["rev-parse", "--absolute-git-dir"], where)
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None


def _setup_output(where: Path) -> set[tuple[str, str]]:
    git_dir = _git_dir(where)
    if git_dir is None:
        return set()
    try:
        text = (git_dir / SETUP_BASELINE).read_text()
    except OSError:
        return set()
    return {(line[:2], line[3:]) for line in text.split("\0") if len(line) >= 4}


def record_setup_output(where: Path) -> None:
    """Remember what setup made, so that it is not taken for the agent's output."""
    entries = _status(where)
    git_dir = _git_dir(where)
    if entries is None or git_dir is None:
        return
    made = [f"{code} {path}" for code, path in entries if code in ("??", "!!")]
    (git_dir / SETUP_BASELINE).write_text("\0".join(made))


def why_kept(where: Path, *, ignored: bool = True) -> str | None:
    """Why this worktree must be kept (its changes and new files, counted), or None when it
    holds nothing of the agent's: tracked files unchanged, and no untracked or ignored file
    that setup did not make. With ignored=False, ignored files do not count (what a commit
    would take)."""
    entries = _status(where)
    if entries is None:
        return "kept: git status failed"
    setup = _setup_output(where)
    counts: Counter[tuple[str, str]] = Counter()
    for code, path in entries:
        if (code, path) not in setup and (ignored or code != "!!"):
            kind = "untracked" if code == "??" else "ignored" if code == "!!" else "changed"
            counts[kind, "folder" if path.endswith("/") else "file"] += 1
    parts = [
        f"{counts[kind, noun]} {kind} {noun}{'' if counts[kind, noun] == 1 else 's'}"
        for kind in ("changed", "untracked", "ignored")
        for noun in ("file", "folder")
        if counts[kind, noun]
    ]
    return "kept: " + ", ".join(parts) if parts else None


def setup_untracked(where: Path) -> list[str]:
    """Untracked (not ignored) paths that `[worktree] setup` made: never the agent's work."""
    return sorted(path for code, path in _setup_output(where) if code == "??")


def remove_unless_kept(repo: Path, where: Path) -> str | None:
    """Remove a worktree that holds no output (the branch stays) and return None; else
    return why it is kept (why_kept). None too when the folder is already gone.

    `git worktree remove` alone is not enough: it deletes ignored files, which may be all
    the agent produced (a build, results under an ignored folder)."""
    with repo_lock(repo):
        return _remove_unless_kept(repo, where)


def _remove_unless_kept(repo: Path, where: Path) -> str | None:
    if where.exists():
        kept = why_kept(where)
        if kept is not None:
            return kept
        # --force: what is left is setup's output (untracked, maybe), nothing of the agent's.
        done = _git(["worktree", "remove", "--force", str(where)], repo)
        if done.returncode != 0:
            return f"kept: git worktree remove failed: {done.stderr.strip()}"
    _owner_file(where).unlink(missing_ok=True)
    return None


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
    record_setup_output(where)
    return None
