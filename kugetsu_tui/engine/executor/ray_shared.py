"""What both sides of the Ray executor share: the names, limits and timings they agree
on, the messages that travel between the supervisor and an attempt's actor (RemoteLaunch
out, Look back), and the few helpers both use (Ray's lazy import, git, names).

Ray is imported only when this executor is used (`pip install 'kugetsu-tui[ray]'`).
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.readings import TreeUsage
from kugetsu_tui.engine.runner import SpawnError

NAMESPACE = "kugetsu"
RESOURCE = "kugetsu_agent"
POLL_EVERY = 0.2  # seconds between looks at a quiet attempt
CHUNK = 1 << 20  # the most log one look brings back
CALL_TIMEOUT = 30.0  # a call to an actor that takes longer is tried again
MEASURE_EVERY = 2.0  # seconds between readings of an agent's process tree on its node
RETELL = 1.0  # seconds before the same signal is sent to an attempt again
CONNECT_TIMEOUT = 3.0  # seconds to wait for the head's port to answer
GIT_ID = ["-c", "user.name=kugetsu", "-c", "user.email=kugetsu@localhost"]


def import_ray() -> Any:
    """Ray, or SpawnError saying how to install it."""
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


def first_line(err: BaseException) -> str:
    """The first line of an error, short enough for a log line or a reason."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def git(args: list[str], cwd: Path, check: bool = True) -> str:
    """Run git under kugetsu's name; its output, or SpawnError naming the failure."""
    done = subprocess.run(
        ["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        raise SpawnError(f"git {args[0]} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


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
