"""The Ray executor: each attempt runs on some node of a Ray cluster, as one named,
detached actor that holds one `kugetsu_agent` resource and the agent's memory estimate.

The store, the queue and the cap stay with the supervisor; Ray only chooses the node.
The repo travels as git bundles through Ray's object store: a bundle of the attempt's
base commit goes out (put once per commit), the actor keeps a node-local clone per repo
and makes the task's worktree there, runs the agent under the same `sh` wrapper and
process group as the local executor (engine/runner.py), and after the agent ends
returns a bundle of the task branch's new commits, which is fetched into the task's
worktree on the supervisor's machine (so `diff`, `merge` and `discard` work unchanged).

The log streams back in chunks into `runs/<id>/log`; the node the attempt runs on is
written to `runs/<id>/node` (status shows it). An attempt is named to the supervisor by
`-task_id` (never a local pid) with its attempt number as "start time"; the actor's name,
`kugetsu-<home id>-<task>-<attempt>`, lets a restarted supervisor find it again. An
actor lost with its node ends the attempt without an exit status: the supervisor treats
it as interrupted (on_interrupt), so it runs again elsewhere, never twice at once.

Ray is imported only when this executor is used (`pip install 'kugetsu-tui[ray]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import markers, runner
from kugetsu_tui.engine.capacity import TreeMeter, TreeUsage
from kugetsu_tui.engine.config import DEFAULT_EST_RSS, Config
from kugetsu_tui.engine.executor import Launch
from kugetsu_tui.engine.home import Home, private_dir
from kugetsu_tui.engine.runner import Spawned, SpawnError
from kugetsu_tui.errors import UsageError

NAMESPACE = "kugetsu"
RESOURCE = "kugetsu_agent"
POLL_EVERY = 0.2  # seconds between looks at a quiet attempt
CHUNK = 1 << 20  # the most log one look brings back
CALL_TIMEOUT = 30.0  # a call to an actor that takes longer is tried again
MEASURE_EVERY = 2.0  # seconds between readings of an agent's process tree on its node
RETELL = 1.0  # seconds before the same signal is sent to an attempt again
CONNECT_TIMEOUT = 3.0  # seconds to wait for the head's port to answer
GIT_ID = ["-c", "user.name=kugetsu", "-c", "user.email=kugetsu@localhost"]

# Ends the agent's whole process group when the actor's worker process goes away (its node
# lost, the actor killed): an agent whose result can never come back must not run on.
# $1 the actor's pid, $2 the agent's process group.
WATCHDOG = r"""
while kill -0 "$1" 2>/dev/null && kill -0 "-$2" 2>/dev/null; do sleep 1; done
kill -0 "$1" 2>/dev/null || kill -KILL "-$2" 2>/dev/null
exit 0
"""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpawnError("the ray executor needs Ray: pip install 'kugetsu-tui[ray]'") from None
    return ray


def home_id(home: Home) -> str:
    """A short name for this home, the same after a restart, different for every home."""
    where = f"{socket.gethostname()}:{home.root.resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:10]


def actor_name(home: str, task_id: int, attempt: int) -> str:
    return f"kugetsu-{home}-{task_id}-{attempt}"


def node_text(node: Mapping[str, str] | None) -> str:
    return f"node {node.get('node_id', '?')} ({node.get('host', '?')})" if node else "an unknown node"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _git(args: list[str], cwd: Path, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        raise SpawnError(f"git {args[0]} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


# --- on the node -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteLaunch:
    """What the actor needs to run one attempt on its node (sent through Ray)."""

    task_id: int
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    local_cwd: str  # the supervisor's paths, replaced by the node's in argv
    local_run_dir: str
    files: Mapping[str, bytes]  # run-dir files the argv or stdin names (the prompt)
    stdin: str | None  # the name of one of files, or None
    repo_key: str | None  # None: no repo travels, the agent runs in an empty folder
    base: str | None  # the commit the worktree starts from
    branch: str | None


@dataclass(frozen=True, slots=True)
class Look:
    """One look at an attempt from its actor: new log, how it stands, where it runs."""

    chunk: bytes
    exited: bool  # the wrapper (and so the agent) has ended
    status: int | None
    alive: bool  # something of its process group still runs
    node: dict[str, str]
    usage: TreeUsage | None  # the agent's process tree, measured on its node


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
        node = str(_ray().get_runtime_context().get_node_id())[:12]
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
        ray = _ray()
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
                _git(["init", "-q", "--bare", str(clone)], repos)
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
                    _git(["fetch", "-q", f.name, f"+HEAD:refs/kugetsu/bases/{base}"], clone)
            if where.exists():
                _git(["worktree", "remove", "--force", str(where)], clone, check=False)
                shutil.rmtree(where, ignore_errors=True)
            _git(["worktree", "prune"], clone)
            _git(["worktree", "add", "-q", "--force", "-B", branch, str(where), base], clone)
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
        if _git(["status", "--porcelain"], where):
            _git(["add", "-A"], where)
            _git(["commit", "-q", "-m", f"kugetsu: work of task {self.task_id} left uncommitted"], where)
        if _git(["rev-parse", "HEAD"], where) == base:
            return None
        out = self.run_dir / "result.bundle"
        _git(["bundle", "create", "-q", str(out), f"refs/heads/{branch}", f"^{base}"], where)
        data = out.read_bytes()
        out.unlink()
        return data

    def close(self) -> None:
        """Remove the node-local worktree and run folder (the result has been fetched)."""
        if self.worktree is not None and self.clone is not None:
            _git(["worktree", "remove", "--force", str(self.worktree)], self.clone, check=False)
            _git(["branch", "-D", self.branch or ""], self.clone, check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)


# --- on the supervisor's machine ---------------------------------------------------------


@dataclass(slots=True)
class _Progress:
    node: dict[str, str] | None = None  # where the attempt was last seen running
    term_at: float | None = None  # when what the agent left behind was asked to end


@dataclass(slots=True)
class _Attempt:
    task_id: int
    attempt: int
    actor: Any
    run_dir: Path
    cwd: Path | None = None  # the task's worktree here, where the result is fetched into
    branch: str | None = None
    done: bool = False  # ended (or lost), its result fetched and its actor gone
    status: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    nudge: threading.Event = field(default_factory=threading.Event)  # look again now
    told: dict[str, float] = field(default_factory=dict)  # signal -> when last sent


class RayExecutor:
    def __init__(
        self,
        home: Home,
        address: str,
        *,
        memory: Callable[[str], float] | None = None,
        kill_grace: float = 10.0,
    ) -> None:
        self.home = home
        self.address = address
        self.memory = memory  # argv[0] -> bytes the agent is expected to use
        self.kill_grace = kill_grace
        self.home_id = home_id(home)
        self._connected = False
        self._bundles: dict[str, Any] = {}  # commit -> the object ref of its bundle
        self._attempts: dict[int, _Attempt] = {}
        # task -> the latest reading of its agent's tree on its node (the advisor stores it)
        self.remote_usage: dict[int, TreeUsage] = {}

    @classmethod
    def for_config(cls, home: Home, config: Config) -> RayExecutor:
        """The executor `[executor] kind = "ray"` asks for: each actor asks for the memory
        its agent is expected to use (est_rss of the agent whose command it runs)."""
        estimates = {a.command[0]: a.est_rss for a in config.agents.values() if a.command}

        def memory(program: str) -> float:
            return estimates.get(program, DEFAULT_EST_RSS)

        return cls(home, config.executor_address, memory=memory, kill_grace=config.kill_grace)

    # --- the cluster ------------------------------------------------------------------

    def _connect(self) -> Any:
        ray = _ray()
        if not self._connected:
            if not ray.is_initialized():
                options: dict[str, Any] = {}
                if self.address != "auto":
                    # ray.init waits minutes for a head that does not answer: ask first.
                    host, _, port = self.address.rpartition(":")
                    try:
                        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
                    except (OSError, ValueError) as err:
                        raise SpawnError(f"cannot reach the Ray cluster at {self.address}: {err}") from None
                    if host.startswith("127.") or host == "localhost":
                        options["_node_ip_address"] = "127.0.0.1"
                try:
                    ray.init(
                        address=self.address,
                        namespace=NAMESPACE,
                        log_to_driver=False,
                        logging_level="ERROR",
                        **options,
                    )
                except Exception as err:
                    raise SpawnError(f"cannot reach the Ray cluster at {self.address}: {err}") from None
            self._connected = True
        return ray

    def _actor(self, task_id: int, attempt: int) -> Any | None:
        ray = self._connect()
        try:
            return ray.get_actor(actor_name(self.home_id, task_id, attempt), namespace=NAMESPACE)
        except ValueError:
            return None

    def _adopt(self, pid: int, started: float | None) -> _Attempt | None:
        """The attempt named by (pid, started), from memory or found again by its actor's name."""
        known = self._attempts.get(pid)
        if known is not None or pid >= 0 or started is None:
            return known
        task_id, attempt = -pid, int(started)
        actor = self._actor(task_id, attempt)
        if actor is None:
            return None
        found = _Attempt(task_id, attempt, actor, self.home.run_dir(task_id))
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((found.run_dir / "ray.json").read_text())
            found.cwd = Path(saved["cwd"]) if saved.get("cwd") else None
            found.branch = saved.get("branch")
        self._attempts[pid] = found
        return found

    # --- the Executor protocol --------------------------------------------------------

    def spawn(self, launch: Launch) -> Spawned:
        ray = self._connect()
        remote, bundle = self._remote_launch(launch)
        options: dict[str, Any] = {
            "name": actor_name(self.home_id, launch.task_id, launch.attempt),
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "num_cpus": 0,
            "resources": {RESOURCE: 1},
            "max_restarts": 0,
            "get_if_exists": False,
        }
        if self.memory is not None:
            options["memory"] = int(self.memory(launch.argv[0]))
        try:
            actor = (
                ray.remote(AttemptActor)
                .options(**options)
                .remote(self.home_id, launch.task_id, launch.attempt)
            )
        except Exception as err:
            raise SpawnError(f"cannot start the attempt on the Ray cluster: {err}") from None
        pid = -launch.task_id
        attempt = _Attempt(
            launch.task_id, launch.attempt, actor, launch.run_dir, cwd=None, branch=remote.branch
        )
        if remote.repo_key is not None:
            attempt.cwd = launch.cwd
        runner.write_private(
            launch.run_dir / "ray.json",
            json.dumps({"cwd": str(attempt.cwd) if attempt.cwd else None, "branch": remote.branch}),
        )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(launch.run_dir / "node")
        os.close(os.open(launch.run_dir / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        # Placement and the worktree happen on the node; the first look waits for them.
        actor.start.remote(remote, bundle)
        self._attempts[pid] = attempt
        return Spawned(pid, float(launch.attempt))

    def _remote_launch(self, launch: Launch) -> tuple[RemoteLaunch, Any]:
        files: dict[str, bytes] = {}
        prompt = launch.run_dir / "prompt"
        if prompt.exists():
            files["prompt"] = prompt.read_bytes()
        stdin = None
        if launch.stdin is not None:
            files[launch.stdin.name] = launch.stdin.read_bytes()
            stdin = launch.stdin.name
        env = {k: v for k, v in launch.env.items() if k in ("KUGETSU_TASK_ID", "KUGETSU_ATTEMPT")}
        repo_key = base = branch = None
        bundle = None
        # Only the task's own worktree travels: a no-worktree task's folder is not ours to copy.
        if launch.cwd.resolve().parent == self.home.worktrees.resolve():
            base = _git(["rev-parse", "HEAD"], launch.cwd)
            branch = _git(["symbolic-ref", "--short", "HEAD"], launch.cwd)
            common = _git(["rev-parse", "--path-format=absolute", "--git-common-dir"], launch.cwd)
            repo_key = hashlib.sha256(f"{self.home_id}:{common}".encode()).hexdigest()[:16]
            bundle = self._bundle(launch.cwd, base)
        remote = RemoteLaunch(
            launch.task_id,
            launch.attempt,
            tuple(launch.argv),
            env,
            str(launch.cwd),
            str(launch.run_dir),
            files,
            stdin,
            repo_key,
            base,
            branch,
        )
        return remote, bundle

    def _bundle(self, cwd: Path, commit: str) -> Any:
        """The base commit's bundle in the object store, made once per commit."""
        ref = self._bundles.get(commit)
        if ref is None:
            ray = _ray()
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "base.bundle"
                _git(["bundle", "create", "-q", str(out), "HEAD"], cwd)
                ref = ray.put(out.read_bytes())
            self._bundles[commit] = ref
        return ref

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        attempt = self._attempts.get(pid)
        if attempt is None or attempt.done:
            on_exit()
            return
        loop = asyncio.get_running_loop()
        attempt.stop.clear()

        def ended() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the next supervisor settles it
                loop.call_soon_threadsafe(on_exit)

        threading.Thread(
            target=self._follow, args=(attempt, ended), name=f"kugetsu-ray-{attempt.task_id}", daemon=True
        ).start()

    def _follow(self, attempt: _Attempt, ended: Callable[[], None]) -> None:
        """Stream the attempt's log here until it ends; then fetch its result, end its
        actor and say so. An actor lost (its node died) ends it without a status."""
        ray = _ray()
        exceptions = ray.exceptions
        progress = _Progress()
        while not attempt.stop.is_set() and not attempt.done:
            try:
                quiet = self._look(ray, attempt, progress)
            except exceptions.RayActorError as err:
                attempt.status = None  # lost with its node: interrupted, to run again
                attempt.done = True
                where = node_text(progress.node)
                with open(attempt.run_dir / "log", "a") as log:
                    log.write(f"\n--- kugetsu: lost the attempt on {where}: {_first_line(err)} ---\n")
                break
            except exceptions.RayError:
                quiet = True  # the cluster is busy or briefly out of reach: look again
            if quiet:
                attempt.nudge.wait(POLL_EVERY)
                attempt.nudge.clear()
        if attempt.done and not attempt.stop.is_set():
            ended()

    def _look(self, ray: Any, attempt: _Attempt, progress: _Progress) -> bool:
        """One look at the attempt; True if nothing new came."""
        look: Look = ray.get(attempt.actor.look.remote(), timeout=CALL_TIMEOUT)
        if look.chunk:
            fd = os.open(attempt.run_dir / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, look.chunk)
            finally:
                os.close(fd)
        if look.usage is not None and not look.exited:
            self.remote_usage[attempt.task_id] = look.usage
        else:
            self.remote_usage.pop(attempt.task_id, None)
        if look.node != progress.node:
            progress.node = look.node
            runner.write_private(attempt.run_dir / "node", json.dumps(look.node))
        if look.exited and look.alive:
            # The agent ended but left processes in its group: end them too.
            now = time.monotonic()
            if progress.term_at is None:
                progress.term_at = now
                attempt.actor.signal.remote("term")
            elif now - progress.term_at > self.kill_grace:
                attempt.actor.signal.remote("kill")
        if look.exited and not look.alive:
            self._collect(ray, attempt, look.status)
        return not look.chunk

    def _collect(self, ray: Any, attempt: _Attempt, status: int | None) -> None:
        """Fetch the result into the task's worktree here, note the exit status, end the actor."""
        bundle = ray.get(attempt.actor.result.remote(), timeout=CALL_TIMEOUT * 4)
        if bundle is not None and attempt.cwd is not None and attempt.branch is not None:
            path = attempt.run_dir / "result.bundle"
            path.write_bytes(bundle)
            try:
                _git(["fetch", "-q", str(path), f"refs/heads/{attempt.branch}"], attempt.cwd)
                _git(["merge", "-q", "--ff-only", "FETCH_HEAD"], attempt.cwd)
            except SpawnError as err:
                with open(attempt.run_dir / "log", "a") as log:
                    log.write(f"\n--- kugetsu: the result could not be fetched: {err} ---\n")
                status = status or 1
            finally:
                path.unlink()
        if status is not None:
            runner.write_private(attempt.run_dir / "exit", f"{status}\n")
        with contextlib.suppress(Exception):
            ray.get(attempt.actor.close.remote(), timeout=CALL_TIMEOUT)
        ray.kill(attempt.actor)
        attempt.status = status
        attempt.done = True

    def unwatch(self, pid: int) -> None:
        attempt = self._attempts.get(pid)
        if attempt is not None:
            attempt.stop.set()
            attempt.nudge.set()

    def exit_status(self, task_id: int, pid: int, *, child: bool) -> int | None:
        attempt = self._attempts.get(pid)
        if attempt is not None and attempt.done:
            return attempt.status
        return runner.read_exit_file(self.home.run_dir(task_id))

    def has_exited(self, pid: int) -> bool:
        attempt = self._attempts.get(pid)
        return attempt is None or attempt.done

    def ended_at(self, task_id: int) -> float | None:
        # The exit file is written here once the attempt's result is in: near enough its end.
        try:
            return os.stat(self.home.run_dir(task_id) / "exit").st_mtime
        except OSError:
            return None

    def end_leftovers(self, settled: Sequence[Any]) -> int:
        # On its node, the actor ends the agent's group and its strays, and the watchdog
        # what is left when the actor goes: nothing of a remote attempt runs here.
        return 0

    def still_running(self, pid: int) -> bool:
        attempt = self._attempts.get(pid)
        return attempt is not None and not attempt.done

    def _tell(self, pid: int, what: str) -> None:
        attempt = self._attempts.get(pid)
        if attempt is None or attempt.done:
            return
        # The supervisor repeats a kill on every tick until it learns of the exit, which
        # here takes a look over the network: one call a second is enough.
        now = time.monotonic()
        if now - attempt.told.get(what, -RETELL) >= RETELL:
            attempt.told[what] = now
            attempt.actor.signal.remote(what)
            attempt.nudge.set()  # its end is seen sooner

    def terminate(self, task_id: int, pid: int) -> None:
        self._tell(pid, "term")

    def kill(self, task_id: int, pid: int) -> None:
        self._tell(pid, "kill")

    def kill_strays(self, task_id: int, pid: int) -> None:
        self._tell(pid, "strays")

    def pause(self, pid: int) -> bool:
        attempt = self._attempts.get(pid)
        if attempt is None or attempt.done:
            return False
        ray = _ray()
        try:
            return bool(ray.get(attempt.actor.signal.remote("stop"), timeout=CALL_TIMEOUT))
        except ray.exceptions.RayError:
            return False

    def resume(self, pid: int) -> None:
        self._tell(pid, "cont")

    def is_running(self, pid: int, started: float | None) -> bool:
        try:
            attempt = self._adopt(pid, started)
        except SpawnError as err:
            # Whether its actor still runs cannot be known: never guess (it would run twice).
            raise UsageError(
                f"{err} ([executor] address), where task {-pid} was running: "
                "start the cluster or correct the address, then start the supervisor again"
            ) from None
        return attempt is not None and not attempt.done

    def pid_reused(self, pid: int, started: float | None) -> bool:
        return False  # actor names are never reused by anyone else

    def find(self, task_id: int, attempt: int, admitted_at: float | None = None) -> Spawned | None:
        found = self._adopt(-task_id, float(attempt))
        return Spawned(-task_id, float(attempt)) if found is not None else None


def node_of(run_dir: Path) -> dict[str, str] | None:
    """Where the task's last attempt ran on a Ray cluster (None: on this machine)."""
    try:
        found = json.loads((run_dir / "node").read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
