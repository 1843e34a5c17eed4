"""The Ray executor, the supervisor's side: each attempt runs on some node of a Ray
cluster, as one named, detached actor (engine/executor/ray_node.py) that holds one
`kugetsu_agent` resource and the agent's memory estimate.

The store, the queue and the cap stay with the supervisor; Ray only chooses the node.
The repo travels as git bundles through Ray's object store: a bundle of the attempt's
base commit goes out (put once per commit); after the agent ends its actor returns a
bundle of the task branch's new commits, which is fetched into the task's worktree on
the supervisor's machine (so `diff`, `merge` and `discard` work unchanged).

The log streams back in chunks into `runs/<id>/log`; the node the attempt runs on is
written to `runs/<id>/node` (status shows it). An attempt is named to the supervisor by
`-task_id` (never a local pid) with its attempt number as "start time"; the actor's name,
`kugetsu-<home id>-<task>-<attempt>`, lets a restarted supervisor find it again. An
actor lost with its node ends the attempt without an exit status: the supervisor treats
it as interrupted (on_interrupt), so it runs again elsewhere, never twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kugetsu_tui.engine import runner
from kugetsu_tui.engine.config import DEFAULT_EST_RSS, Config
from kugetsu_tui.engine.executor import Launch, ray_cluster
from kugetsu_tui.engine.executor.ray_cluster import ClusterReading
from kugetsu_tui.engine.executor.ray_node import AttemptActor
from kugetsu_tui.engine.executor.ray_shared import (
    CALL_TIMEOUT,
    NAMESPACE,
    POLL_EVERY,
    RESOURCE,
    RETELL,
    Look,
    RemoteLaunch,
    actor_name,
    first_line,
    git,
    home_id,
    import_ray,
    node_text,
)
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.readings import TreeUsage
from kugetsu_tui.engine.runner import Spawned, SpawnError
from kugetsu_tui.errors import UsageError


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
    node_id: str | None = None  # the Ray node it was last seen running on
    generation: int = 0  # of the executor's connection its actor handle belongs to


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
        self.connection = ray_cluster.Connection(address)
        self._bundles: dict[tuple[int, str], Any] = {}  # (connection, commit) -> its bundle's ref
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
        return self.connection.ray()

    def read_cluster(self) -> ClusterReading:
        """The cluster's nodes and totals now, with this supervisor's attempts on each;
        Unreachable naming the address while it cannot be reached. Slow: call it in a thread."""
        live: dict[str, int] = {}
        for attempt in list(self._attempts.values()):
            if not attempt.done and attempt.node_id:
                live[attempt.node_id] = live.get(attempt.node_id, 0) + 1
        return self.connection.read(live)

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
        found = _Attempt(
            task_id, attempt, actor, self.home.run_dir(task_id), generation=self.connection.generation
        )
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((found.run_dir / "ray.json").read_text())
            found.cwd = Path(saved["cwd"]) if saved.get("cwd") else None
            found.branch = saved.get("branch")
        self._attempts[pid] = found
        return found

    # --- the Executor protocol --------------------------------------------------------

    def spawn(self, launch: Launch) -> Spawned:
        self.connection.probe()  # a head gone since the last look: not a failed attempt
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
            launch.task_id,
            launch.attempt,
            actor,
            launch.run_dir,
            cwd=None,
            branch=remote.branch,
            generation=self.connection.generation,
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
            base = git(["rev-parse", "HEAD"], launch.cwd)
            branch = git(["symbolic-ref", "--short", "HEAD"], launch.cwd)
            common = git(["rev-parse", "--path-format=absolute", "--git-common-dir"], launch.cwd)
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
        key = (self.connection.generation, commit)  # (an outage empties the object store)
        ref = self._bundles.get(key)
        if ref is None:
            ray = import_ray()
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "base.bundle"
                git(["bundle", "create", "-q", str(out), "HEAD"], cwd)
                ref = ray.put(out.read_bytes())
            self._bundles[key] = ref
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
        ray = import_ray()
        exceptions = ray.exceptions
        progress = _Progress()
        while not attempt.stop.is_set() and not attempt.done:
            lost = None
            if attempt.generation != self.connection.generation:
                lost = "the cluster it ran on went away (connected anew since)"
            else:
                try:
                    quiet = self._look(ray, attempt, progress)
                except exceptions.RayActorError as err:
                    lost = first_line(err)
                except exceptions.RayError:
                    quiet = True  # the cluster is busy or briefly out of reach: look again
            if lost is not None:
                attempt.status = None  # lost with its node: interrupted, to run again
                attempt.done = True
                with open(attempt.run_dir / "log", "a") as log:
                    log.write(f"\n--- kugetsu: lost the attempt on {node_text(progress.node)}: {lost} ---\n")
                break
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
            attempt.node_id = look.node.get("node_id")
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
                git(["fetch", "-q", str(path), f"refs/heads/{attempt.branch}"], attempt.cwd)
                git(["merge", "-q", "--ff-only", "FETCH_HEAD"], attempt.cwd)
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

    def _signalled(self, pid: int) -> _Attempt | None:
        """The attempt, if it runs and its actor can be reached through this connection
        (one from before the cluster went away is ended by its follower instead)."""
        attempt = self._attempts.get(pid)
        if attempt is None or attempt.done or attempt.generation != self.connection.generation:
            return None
        return attempt

    def _tell(self, pid: int, what: str) -> None:
        attempt = self._signalled(pid)
        if attempt is None:
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
        attempt = self._signalled(pid)
        if attempt is None:
            return False
        ray = import_ray()
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
