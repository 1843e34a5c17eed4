"""One worktree change at a time per repository, across threads and processes.

A `git worktree prune` beside another `git worktree add` of the same repository deletes
the half-made entry (seen: "could not open '.git/worktrees/2/gitdir' for writing"), and
the two may come from different processes: a supervisor making a task's worktree while a
`kugetsu merge` in another terminal makes and prunes its temporary one. So the lock is an
exclusive `flock` on `kugetsu.lock` in the repository's common git folder (shared by all
its worktrees), taken by the outermost holder in this process; a thread lock beside it
serialises this process's threads and makes the lock reentrant. Where the repository has
no git folder we can write (gone, or not ours), only the thread lock holds: git could not
change its worktrees either.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "kugetsu.lock"


class _RepoLock:
    """This process's hold on one repository's lock: the thread lock, how deep the holding
    thread is in it, and the lock file's descriptor while it is held."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_LOCKS: dict[str, _RepoLock] = {}
_COMMON_DIRS: dict[str, Path] = {}
_GUARD = threading.Lock()


def lock_file(repo: Path) -> Path | None:
    """Where the repository's lock file is (`<git-common-dir>/kugetsu.lock`), or None when
    git finds no repository there."""
    key = os.path.realpath(repo)
    with _GUARD:
        known = _COMMON_DIRS.get(key)
    if known is None:
        try:
            found = subprocess.run(
                ["git", "rev-parse", "--git-common-dir"],
                cwd=repo,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except OSError:  # the folder is gone
            return None
        if found.returncode != 0 or not found.stdout.strip():
            return None
        known = Path(key, found.stdout.strip())  # relative to repo unless git made it absolute
        with _GUARD:
            _COMMON_DIRS[key] = known
    return known / LOCK_FILE


@contextmanager
def repo_lock(repo: Path) -> Iterator[None]:
    """Hold the repository's lock (see the module's docstring); blocks until it is free."""
    path = lock_file(repo)
    key = os.path.realpath(path) if path is not None else os.path.realpath(repo)
    with _GUARD:
        held = _LOCKS.setdefault(key, _RepoLock())
    with held.thread_lock:
        if held.depth == 0:
            held.fd = _lock(path)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                os.close(held.fd)  # closing the file releases the flock
                held.fd = None


def _lock(path: Path | None) -> int | None:
    """Open the lock file and wait for its exclusive flock; None when it cannot be opened."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd
