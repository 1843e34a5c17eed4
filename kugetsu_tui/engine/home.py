"""The state directory (`KUGETSU_HOME`): where it is, that it is private, and who supervises it.

Owns the on-disk layout (state.db, supervisor.lock, runs/<id>/, worktrees/<id>/,
config.toml), the supervisor's exclusive flock, and setting a corrupt database aside
together with the runs and worktrees of its tasks. One home per user: the cap is
machine-wide, across repos. Folders are 0700 and files 0600; a home that others can
write to, or that another user owns, is refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from kugetsu_tui.engine.worktree import repair
from kugetsu_tui.errors import UsageError


def default_home() -> Path:
    explicit = os.environ.get("KUGETSU_HOME")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state).expanduser() if state else Path.home() / ".local" / "state"
    return base / "kugetsu"


def private_dir(path: Path) -> Path:
    """Create path (and parents) as 0700 if missing."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass(frozen=True, slots=True)
class Home:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "state.db"

    @property
    def lock_path(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    def run_dir(self, task_id: int) -> Path:
        return self.runs / str(task_id)

    def log_path(self, task_id: int) -> Path:
        return self.runs / str(task_id) / "log"

    def exit_path(self, task_id: int) -> Path:
        return self.runs / str(task_id) / "exit"

    def worktree_path(self, task_id: int) -> Path:
        return self.worktrees / str(task_id)

    def ensure(self) -> Home:
        """Create the layout if missing, and refuse a home that is not private to us."""
        try:
            private_dir(self.root)
            info = self.root.stat()
        except OSError as err:
            raise UsageError(f"cannot use {self.root} as KUGETSU_HOME: {err.strerror}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(f"KUGETSU_HOME {self.root} is not a directory")
        if info.st_uid != os.getuid():
            raise UsageError(
                f"KUGETSU_HOME {self.root} belongs to uid {info.st_uid}, not you "
                f"(uid {os.getuid()}); expected a folder of your own"
            )
        if info.st_mode & 0o022:
            raise UsageError(
                f"KUGETSU_HOME {self.root} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                f"expected 700: run chmod 700 {self.root}"
            )
        private_dir(self.runs)
        private_dir(self.worktrees)
        return self

    # --- a corrupt database ------------------------------------------------------------

    def quarantine(self) -> Path:
        """Move an unreadable state.db (and its WAL files) aside with the runs and worktrees
        of its tasks; return where the database went. Nothing is deleted.

        The next database numbers its tasks from 1 again: left in place, the old task 1's
        log would be shown as the new task 1's, and its worktree (its files, its branch)
        would be where the new task 1 runs. The folders go first: if moving them fails, the
        database stays where it is, and the next command tries again."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        suffix = f".corrupt-{stamp}"
        n = 1
        while any(Path(f"{path}{suffix}").exists() for path in (self.db_path, self.runs, self.worktrees)):
            n += 1
            suffix = f".corrupt-{stamp}-{n}"
        moved_worktrees = Path(f"{self.worktrees}{suffix}")
        for folder, target in ((self.worktrees, moved_worktrees), (self.runs, Path(f"{self.runs}{suffix}"))):
            if folder.exists():
                os.replace(folder, target)
        if moved_worktrees.is_dir():
            for where in sorted(moved_worktrees.iterdir()):
                repair(where)  # so that git still knows the moved worktrees (and keeps them)
        target = Path(f"{self.db_path}{suffix}")
        for side in ("", "-wal", "-shm"):
            path = Path(f"{self.db_path}{side}")
            if path.exists():
                os.replace(path, Path(f"{target}{side}"))
        private_dir(self.runs)
        private_dir(self.worktrees)
        return target

    # --- the supervisor lock ----------------------------------------------------------

    def supervisor_pid(self) -> int | None:
        """The pid of the supervisor holding this home's lock, or None when none runs."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                return _read_pid(fd) or -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def lock_supervisor(self) -> SupervisorLock:
        """Take the exclusive lock or raise UsageError naming the pid that holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        # A reader checking who holds the lock takes it shared for an instant; retry
        # briefly so that such a look never makes a starting supervisor give up.
        deadline = time.monotonic() + 0.5
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() > deadline:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f"pid {holder}" if holder else "another process"
                    raise UsageError(
                        f"another supervisor ({who}) is already running on {self.root}; "
                        "expected at most one per KUGETSU_HOME"
                    ) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return SupervisorLock(fd)


@dataclass(slots=True)
class SupervisorLock:
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
