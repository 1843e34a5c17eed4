"""One worktree change at a time per repository, across processes: a `kugetsu merge` in one
terminal and a supervisor making a task's worktree in another take the same file lock in
the repo's git folder. Each test holds the lock from a separate Python process and watches
the other process wait on it in /proc/locks (the kernel's list of held and awaited locks)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kugetsu_tui.engine.repolock import lock_file, repo_lock
from tests.helpers.harness import PY, Kugetsu, git, script, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")

_HOLD = """
import sys
from pathlib import Path
from kugetsu_tui.engine.repolock import repo_lock
with repo_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def _held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the repo's lock until the block ends."""
    holder = subprocess.Popen(
        [PY, "-c", _HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        if holder.stdin is not None:
            holder.stdin.close()  # its readline returns: it lets go
        assert holder.wait(timeout=20) == 0


def _waiting_for(lock: Path, pid: int) -> bool:
    """Whether process pid waits for a flock on the file `lock` (a "->" line of /proc/locks)."""
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        words = line.split()
        if "->" in words and "FLOCK" in words:
            at = words.index("FLOCK")
            if int(words[at + 3]) == pid and int(words[at + 4].rsplit(":", 1)[1]) == inode:
                return True
    return False


def test_a_merge_waits_for_the_lock_held_by_another_process(kg: Kugetsu, repo: Path) -> None:
    task_id = kg.add(script(["write", "a.txt", "x"]), "--repo", str(repo), "--max-attempts", "1")
    assert kg.run().returncode == 0
    main = git(repo, "rev-parse", "main")
    lock = lock_file(repo)
    assert lock == repo / ".git" / "kugetsu.lock"

    with _held_elsewhere(repo):
        merging = kg.popen("merge", str(task_id))
        wait_until(lambda: _waiting_for(lock, merging.pid), "the merge to wait for the repo's lock")
        assert merging.poll() is None and git(repo, "rev-parse", "main") == main, "nothing merged yet"
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1, "no worktree made"
    assert merging.wait(timeout=20) == 0, kg.output(merging)
    assert git(repo, "rev-parse", "main") != main and (repo / "a.txt").read_text() == "x"


def test_a_supervisor_waits_to_make_a_worktree_while_a_linked_worktree_holds_the_lock(
    kg: Kugetsu, repo: Path, tmp_path: Path
) -> None:
    """The lock is the repository's, whichever of its worktrees a process names."""
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    assert lock_file(linked) == lock_file(repo)
    task_id = kg.add(script(["write", "a.txt", "x"]), "--repo", str(repo), "--max-attempts", "1")

    with _held_elsewhere(linked):
        supervisor = kg.popen("run", "--headless")
        wait_until(
            lambda: _waiting_for(repo / ".git" / "kugetsu.lock", supervisor.pid),
            "the supervisor to wait for the repo's lock",
        )
        assert not (kg.home / "worktrees" / str(task_id)).exists()
        assert f"kugetsu/{task_id}" not in git(repo, "branch")
    assert supervisor.wait(timeout=60) == 0, kg.output(supervisor)
    assert kg.task(task_id)["state"] == "succeeded"
    assert git(repo, "show", f"kugetsu/{task_id}:a.txt") == "x"


def test_the_lock_is_reentrant_in_a_thread_and_shared_by_threads(repo: Path) -> None:
    linked = repo.parent / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked))
    order: list[str] = []
    with repo_lock(repo), repo_lock(linked):  # the same lock: no deadlock with itself
        other = threading.Thread(target=lambda: _hold(repo, order))
        other.start()
        order.append("first")
    other.join(timeout=20)
    assert order == ["first", "second"]


def _hold(repo: Path, order: list[str]) -> None:
    with repo_lock(repo):
        order.append("second")
