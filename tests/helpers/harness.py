"""The test harness: a private KUGETSU_HOME per test, the real CLI, real supervisors, real agents.

Every test gets its own home under tmp_path with a config.toml whose default agent is
tests/fake_agent.py, and a token in the environment of everything it starts, so that the
agent processes of this test can be found in the OS process table (and only those, even
when other test runs share the machine). Supervisors and agents are always ended at
teardown. The dashboard's harness (tests/helpers/tui.py) extends the same class.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w

from kugetsu_tui import cli

FAKE_AGENT = str((Path(__file__).parents[1] / "fake_agent.py").resolve())
PY = sys.executable
TOKEN_VAR = "KUGETSU_TEST_TOKEN"
WAIT = 20.0  # generous: a condition we wait for should come true far sooner


def script(*steps: Sequence[object]) -> str:
    """A fake agent prompt: each step a mode and its arguments."""
    return " ; ".join(" ".join(shlex.quote(str(word)) for word in step) for step in steps)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT, interval: float = 0.02) -> Any:
    """Poll until condition() is truthy and return its value; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def open_barrier(barrier: Path, parties: int) -> None:
    """Touch the barrier file once `parties` workers are waiting at it (each touched
    BARRIER.ready-PID when it got there)."""
    wait_until(
        lambda: len(list(barrier.parent.glob(f"{barrier.name}.ready-*"))) >= parties,
        f"{parties} workers to wait at the barrier",
    )
    barrier.touch()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def make_repo(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "README.md").write_text("# a test project\n")
    git(where, "init", "-q", "-b", "main")
    git(where, "add", ".")
    git(where, "commit", "-q", "-m", "start")
    return where


def write_toml(path: Path, data: dict[str, Any]) -> None:
    """A config file as kugetsu expects one: TOML, private to the user."""
    path.write_bytes(tomli_w.dumps(data).encode())
    path.chmod(0o600)


def ended(pid: int) -> bool:
    """The process is gone, or a zombie: it has ended and only waits to be collected (by
    PID 1 when it was orphaned, which need not happen at once)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return {}


class Kugetsu:
    """One test's home, config, CLI and supervisors."""

    # Keyword sections given to write_config are merged into the default ones; a subclass
    # may have them replace the defaults' sections whole instead.
    merge_sections = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        self.work = root / "work"
        self.work.mkdir()
        self.config_path = self.home / "config.toml"
        self.token = uuid.uuid4().hex
        self.env = {**os.environ, "KUGETSU_HOME": str(self.home), TOKEN_VAR: self.token}
        self.env.pop("XDG_STATE_HOME", None)
        self.supervisors: list[subprocess.Popen[Any]] = []  # background processes to end
        self.config: dict[str, Any] = {}
        self.write_config()

    # --- config ---------------------------------------------------------------------

    def default_config(self) -> dict[str, Any]:
        """Fast defaults: the fake agent, short backoff and grace."""
        return {
            "default_agent": "fake",
            "capacity": {"cap": 3, "memory_reserve": 0},
            "queue": {
                "max_attempts": 3,
                "retry_backoff": "0.2s",
                "expire_after": "1h",
                "kill_grace": "1s",
            },
            "agents": {"fake": {"command": [PY, FAKE_AGENT, "{prompt}"]}},
        }

    def write_config(self, **sections: Any) -> dict[str, Any]:
        """config.toml with fast defaults; keyword arguments replace whole sections or keys."""
        config = self.default_config()
        for key, value in sections.items():
            if self.merge_sections and isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        write_toml(self.config_path, config)
        self.config = config
        return config

    # --- the CLI ----------------------------------------------------------------------

    def cli(
        self, *args: str, input: str | None = None, cwd: Path | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """The real `kugetsu` command in a subprocess."""
        return subprocess.run(
            [PY, "-m", "kugetsu_tui", *args],
            env=self.env,
            cwd=cwd or self.work,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def main(self, *args: str) -> tuple[int, str, str]:
        """`kugetsu --home HOME ARGS` in this process (faster; for setup and reading)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["--home", str(self.home), *args])
        return code, out.getvalue(), err.getvalue()

    def add(self, prompt: str, *options: str) -> int:
        """Queue a task (no worktree unless options say --repo …) and return its id."""
        if not any(o.startswith("--repo") for o in options):
            options = (*options, "--no-worktree", "--repo", str(self.work))
        code, out, err = self.main("add", *options, "--", prompt)
        assert code == 0, err
        return int(out.strip())

    def status(self) -> dict[str, Any]:
        code, out, err = self.main("status", "--json", "--all")
        assert code == 0, err
        result: dict[str, Any] = json.loads(out)
        return result

    def tasks(self) -> dict[int, dict[str, Any]]:
        return {t["id"]: t for t in self.status()["tasks"]}

    def task(self, task_id: int) -> dict[str, Any]:
        return self.tasks()[task_id]

    def events(self, task_id: int | None = None) -> list[dict[str, Any]]:
        args = ["events"] + (["--task", str(task_id)] if task_id is not None else [])
        code, out, err = self.main(*args)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]

    def wait_state(self, task_id: int, *states: str, timeout: float = WAIT) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            task = self.task(task_id)
            return task if task["state"] in states else None

        result: dict[str, Any] = wait_until(reached, f"task {task_id} to be {' or '.join(states)}", timeout)
        return result

    # --- supervisors ------------------------------------------------------------------

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`kugetsu run --headless ARGS` until the queue is drained."""
        return self.cli("run", "--headless", *args, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        """Start `kugetsu ARGS` in the background; it is ended at teardown. Its output goes to
        files under the test's folder (see output())."""
        n = len(self.supervisors)
        with open(self.root / f"bg-{n}.out", "wb") as out, open(self.root / f"bg-{n}.err", "wb") as err:
            proc = subprocess.Popen(
                [PY, "-m", "kugetsu_tui", *args],
                env=self.env,
                cwd=self.work,
                stdout=out,
                stderr=err,
                umask=0o022,
            )
        self.supervisors.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> tuple[str, str]:
        """What a process started with popen() printed so far: (stdout, stderr)."""
        n = self.supervisors.index(proc)
        return (self.root / f"bg-{n}.out").read_text(), (self.root / f"bg-{n}.err").read_text()

    def start_supervisor(self, *args: str) -> subprocess.Popen[bytes]:
        """`kugetsu run --headless --forever`, returned once it holds the home's lock."""
        proc = self.popen("run", "--headless", "--forever", *args)

        def serving() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the supervisor exited with {proc.returncode}: {self.output(proc)[1]}")
            return bool(self.status()["supervisor_pid"] == proc.pid)

        wait_until(serving, "the supervisor to start")
        return proc

    def stop_supervisor(self, proc: subprocess.Popen[bytes], timeout: float = WAIT) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    # --- the OS process table -----------------------------------------------------------

    def our_processes(self, agents_only: bool = True) -> list[psutil.Process]:
        """Agent trees (sh wrappers, agents, their children) started under this test's token;
        with agents_only=False, supervisors and CLI runs too."""
        found = []
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            env = _environ(proc)
            if env.get(TOKEN_VAR) == self.token and (not agents_only or "KUGETSU_TASK_ID" in env):
                found.append(proc)
        return found

    def agent_processes(self, children: bool = False) -> list[psutil.Process]:
        """Live fake agents of this test, from the OS process table (not from our counters).

        Without `children`, only the agents the supervisor started (not what they spawned)."""
        found = []
        for proc in psutil.process_iter():
            cmd = _cmdline(proc)
            if len(cmd) < 2 or cmd[1] != FAKE_AGENT:
                continue
            env = _environ(proc)
            if env.get(TOKEN_VAR) != self.token:
                continue
            if not children and env.get("FAKE_AGENT_CHILD"):
                continue
            found.append(proc)
        return found

    def cleanup(self) -> None:
        self.end_supervisors()
        self.end_our_processes()

    def end_supervisors(self) -> None:
        for proc in self.supervisors:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def end_our_processes(self) -> None:
        # A stopped supervisor leaves its agents running on purpose (to adopt them later);
        # a test must not leave them behind.
        for _ in range(3):
            left = self.our_processes(agents_only=False)
            if not left:
                break
            for proc in left:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            psutil.wait_procs(left, timeout=5)
