"""runner.spawn through libc's posix_spawn: what the agent gets (its own session, stdin
from the given file, stdout and stderr in the log, exactly the given environment), and
a bad argument is the task's spawn error, not the supervisor's crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kugetsu_tui.engine import runner
from kugetsu_tui.engine.runner import SpawnError, spawn

# Its session id (the sixth field of /proc/<pid>/stat), its stdin, a variable it was given,
# then how many variables it has; and a line on stderr.
REPORT = (
    'set -- $(cat /proc/$$/stat); printf "%s %s %s|" "$6" "$(cat)" "$ONLY"; env | grep -c . ; echo err >&2'
)


def wait_exit(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_agent_gets_its_session_stdin_log_and_exactly_its_environment(tmp_path: Path) -> None:
    stdin = tmp_path / "prompt"
    stdin.write_text("from stdin")
    env = {"ONLY": "this", "PATH": os.environ["PATH"]}
    spawned = spawn(["sh", "-c", REPORT], cwd=tmp_path, run_dir=tmp_path, attempt=1, env=env, stdin=stdin)
    assert wait_exit(spawned.pid) == 0
    session, rest = (tmp_path / "log").read_text().split(" ", 1)
    assert int(session) == spawned.pid, "the wrapper leads a session of its own"
    said, count = rest.split("|")
    assert said == "from stdin this"
    # The agent's own environment: what was given, plus what sh itself sets (PWD, SHLVL, _).
    assert int(count.split()[0]) <= len(env) + 3
    assert count.split()[1] == "err", "stderr goes to the log too"
    assert runner.read_exit_file(tmp_path) == 0


def test_an_argument_with_a_nul_byte_is_a_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="NUL"):
        spawn(["echo", "a\0b"], cwd=tmp_path, run_dir=tmp_path, attempt=1, env=dict(os.environ))
