"""The node side of the Ray executor: AttemptActor, one per attempt, placed by Ray on
some node. It keeps a node-local clone per repo (under the temp folder), makes the task's
worktree there from the base commit's bundle, runs the agent under the same `sh` wrapper
and process group as the local executor (engine/runner.py), answers looks (new log, exit
status, the tree's usage), signals the group, and after the agent ends hands back a
bundle of the task branch's new commits. A watchdog ends the agent's group if the actor's
worker goes away (its node lost, the actor killed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from kugetsu_tui.engine import markers, runner
from kugetsu_tui.engine.executor.ray_shared import (
    CHUNK,
    MEASURE_EVERY,
    Look,
    RemoteLaunch,
    git,
    import_ray,
)
from kugetsu_tui.engine.home import private_dir
from kugetsu_tui.engine.readings import TreeMeter, TreeUsage
from kugetsu_tui.engine.runner import SpawnError

# Ends the agent's whole process group when the actor's worker process goes away (its node
# lost, the actor killed): an agent whose result can never come back must not run on.
# $1 the actor's pid, $2 the agent's process group.
WATCHDOG = r"""
while kill -0 "$1" 2>/dev/null && kill -0 "-$2" 2>/dev/null; do sleep 1; done
kill -0 "$1" 2>/dev/null || kill -KILL "-$2" 2>/dev/null
exit 0
"""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class AttemptActor:
    """One attempt on one node. Keeps its node-local state under the temp folder."""

    def __init__(self, home: str, task_id: int, attempt: int) -> None:
        self.task_id, self.attempt = task_id, attempt
        node = str(import_ray().get_runtime_context().get_node_id())[:12]
        self.root = private_dir(Path(tempfile.gettempdir()) / f"kugetsu-{home}-{node}")
        self.run_dir = private_dir(private_dir(self.root / "runs") / str(task_id))
        self.worktree: Path | None = None
        self.clone: Path | None = None
        self.branch: str | None = None
        self.base: str | None = None
        self.pid: int | None = None
        self.started: float | None = None
        self.status: int | None = None
        self.offset = 0
        self.meter = TreeMeter()
        self.usage: TreeUsage | None = None
        self.measured = 0.0

    def node(self) -> dict[str, str]:
        ray = import_ray()
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),
        }

    def start(self, launch: RemoteLaunch, bundle: bytes | None) -> dict[str, str]:
        """Make the worktree from the bundle and start the agent under the wrapper. What
        fails here fails the attempt (exit status 127, the reason in its log)."""
        try:
            self._start(launch, bundle)
        except Exception as err:  # whatever it was, the attempt must end, not hang unstarted
            self.status = 127
            with open(self.run_dir / "log", "a") as log:
                log.write(f"\n--- kugetsu: cannot start on {socket.gethostname()}: {err} ---\n")
        return self.node()

    def _start(self, launch: RemoteLaunch, bundle: bytes | None) -> None:
        if launch.repo_key is not None and launch.base and launch.branch:
            where = self._worktree(launch.repo_key, launch.base, launch.branch, bundle)
        else:
            where = private_dir(private_dir(self.root / "scratch") / str(launch.task_id))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.run_dir / "exit")
        for name, data in launch.files.items():
            (self.run_dir / name).write_bytes(data)
            os.chmod(self.run_dir / name, 0o600)
        argv = [
            part.replace(launch.local_cwd, str(where)).replace(launch.local_run_dir, str(self.run_dir))
            for part in launch.argv
        ]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "KUGETSU_"))},
            **launch.env,
            "KUGETSU_TASK_ID": str(launch.task_id),
            "KUGETSU_ATTEMPT": str(launch.attempt),
            # What finds the processes that left the agent's group, on this node.
            markers.MARKER: markers.run_marker(self.root, launch.task_id, launch.attempt, None),
        }
        stdin = self.run_dir / launch.stdin if launch.stdin else None
        spawned = runner.spawn(
            argv, cwd=where, run_dir=self.run_dir, attempt=launch.attempt, env=env, stdin=stdin
        )
        self.pid, self.started = spawned.pid, spawned.started
        subprocess.Popen(
            ["sh", "-c", WATCHDOG, "kugetsu-watchdog", str(os.getpid()), str(spawned.pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _worktree(self, repo_key: str, base: str, branch: str, bundle: bytes | None) -> Path:
        repos = private_dir(self.root / "repos")
        clone = repos / f"{repo_key}.git"
        where = private_dir(self.root / "worktrees") / str(self.task_id)
        with _locked(repos / f"{repo_key}.lock"):  # other actors of this node share the clone
            if not clone.is_dir():
                git(["init", "-q", "--bare", str(clone)], repos)
            has_base = (
                subprocess.run(
                    ["git", "cat-file", "-e", f"{base}^{{commit}}"], cwd=clone, capture_output=True
                ).returncode
                == 0
            )
            if not has_base:
                if bundle is None:
                    raise SpawnError(f"commit {base} is not on this node and no bundle came")
                with tempfile.NamedTemporaryFile(dir=repos, suffix=".bundle") as f:
                    f.write(bundle)
                    f.flush()
                    git(["fetch", "-q", f.name, f"+HEAD:refs/kugetsu/bases/{base}"], clone)
            if where.exists():
                git(["worktree", "remove", "--force", str(where)], clone, check=False)
                shutil.rmtree(where, ignore_errors=True)
            git(["worktree", "prune"], clone)
            git(["worktree", "add", "-q", "--force", "-B", branch, str(where), base], clone)
        self.worktree, self.clone, self.branch, self.base = where, clone, branch, base
        return where

    def look(self) -> Look:
        try:
            with open(self.run_dir / "log", "rb") as f:
                f.seek(self.offset)
                chunk = f.read(CHUNK)
        except FileNotFoundError:
            chunk = b""
        self.offset += len(chunk)
        exited, alive = self.status is not None, False
        if self.pid is not None:
            if self.status is None:
                self.status = runner.reap(self.pid)
            exited = self.status is not None or not runner.is_same_process(self.pid, self.started)
            if exited and self.status is None:
                self.status = runner.read_exit_file(self.run_dir)
            alive = runner.group_alive(self.pid)
            now = time.monotonic()
            if not exited and now - self.measured >= MEASURE_EVERY:
                # One scan of the process table: not on every look.
                self.measured = now
                self.usage = self.meter.sample([self.pid]).get(self.pid, self.usage)
        return Look(chunk, exited, self.status, alive, self.node(), self.usage)

    def signal(self, what: str) -> bool:
        """ "term", "kill", "stop", "cont" to the agent's group, "strays" for what left it."""
        pid = self.pid
        if pid is None:
            return False
        if what == "stop":
            runner.signal_group(pid, signal.SIGSTOP)
            if not runner.is_same_process(pid, self.started):
                runner.signal_group(pid, signal.SIGCONT)
                return False
            return True
        if what == "cont":
            return runner.signal_group(pid, signal.SIGCONT)
        sig = signal.SIGTERM if what == "term" else signal.SIGKILL
        if what != "strays":
            runner.signal_group(pid, sig)
            runner.signal_group(pid, signal.SIGCONT)
        for stray in markers.stray_processes(self.root, self.task_id, pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(stray, sig)
                os.kill(stray, signal.SIGCONT)
        return True

    def result(self) -> bytes | None:
        """A bundle of the branch's new commits (what the agent left uncommitted is
        committed first), or None when there are none."""
        where, branch, base = self.worktree, self.branch, self.base
        if where is None or branch is None or base is None:
            return None
        if git(["status", "--porcelain"], where):
            git(["add", "-A"], where)
            git(["commit", "-q", "-m", f"kugetsu: work of task {self.task_id} left uncommitted"], where)
        if git(["rev-parse", "HEAD"], where) == base:
            return None
        out = self.run_dir / "result.bundle"
        git(["bundle", "create", "-q", str(out), f"refs/heads/{branch}", f"^{base}"], where)
        data = out.read_bytes()
        out.unlink()
        return data

    def close(self) -> None:
        """Remove the node-local worktree and run folder (the result has been fetched)."""
        if self.worktree is not None and self.clone is not None:
            git(["worktree", "remove", "--force", str(self.worktree)], self.clone, check=False)
            git(["branch", "-D", self.branch or ""], self.clone, check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
