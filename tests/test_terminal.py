"""Terminal agents (terminal = true): they run in a tmux pane on the home's own tmux server
under the same wrapper, group and cap as any agent; a person sees which one waits for
input, answers with `send` or steps in with `attach`; nothing of tmux outlives the queue."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.supervisor.advisor import SAMPLE_EVERY
from tests.helpers.harness import FAKE_AGENT, PY, WAIT, Kugetsu, script, wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="terminal agents need tmux")


def _terminal_config(kg: Kugetsu, **queue: object) -> None:
    kg.write_config(
        agents={
            "fake": {"command": [PY, FAKE_AGENT, "{prompt}"]},
            "tty": {"command": [PY, FAKE_AGENT, "{prompt}"], "terminal": True},
        },
        queue=queue,
    )


def _tmux_servers(kg: Kugetsu) -> list[psutil.Process]:
    """tmux processes serving this home's socket."""
    sock = str(kg.home / "tmux.sock")
    found = []
    for proc in psutil.process_iter():
        try:
            cmd = proc.cmdline()
            if cmd and os.path.basename(cmd[0]).startswith("tmux") and sock in cmd:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _nothing_left(kg: Kugetsu) -> None:
    wait_until(lambda: not _tmux_servers(kg), "the home's tmux server to exit")
    wait_until(lambda: not kg.agent_processes(children=True), "every agent process to end")


def _log_with(kg: Kugetsu, task_id: int, text: str) -> str:
    """The task's log once it holds text: the terminal's output reaches it through a pipe,
    which may lag the agent's exit by a moment."""
    log = kg.home / "runs" / str(task_id) / "log"
    found: str = wait_until(lambda: text in (t := log.read_text()) and t, f"{text!r} in the log")
    return found


def _last_sample(kg: Kugetsu) -> float:
    """When the supervisor last published what it sampled."""
    store = Store(kg.home / "state.db")
    try:
        return max((ts for _, ts in store.meta().values()), default=0.0)
    finally:
        store.close()


def _needs_input(kg: Kugetsu, task_id: int) -> str:
    found: str = wait_until(
        lambda: kg.task(task_id)["needs_input"], f"task {task_id} to need input", WAIT * 2
    )
    return found


def test_a_terminal_agent_that_asks_needs_input_and_send_answers_it(kg: Kugetsu) -> None:
    _terminal_config(kg)
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty")
    kg.wait_state(task_id, "running")
    assert "Proceed? [y/N]" in _needs_input(kg, task_id)
    code, out, _ = kg.main("status")
    assert code == 0 and "[needs input: Proceed? [y/N]" in out
    needs = [e for e in kg.events(task_id) if e["type"] == "task_needs_input"]
    assert [e["by"] for e in needs] == ["screen"]

    assert kg.main("send", str(task_id), "y")[0] == 0
    task = kg.wait_state(task_id, "succeeded")
    assert task["needs_input"] is None
    log = _log_with(kg, task_id, "answered 'y'")
    assert "Proceed? [y/N]" in log
    _nothing_left(kg)


def test_a_terminal_agent_reads_its_answer_from_the_terminal_not_dev_null(kg: Kugetsu) -> None:
    """Any other answer than y fails it: the answer really comes from what was sent."""
    _terminal_config(kg, max_attempts=1)
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty", "--max-attempts", "1")
    _needs_input(kg, task_id)
    assert kg.main("send", str(task_id), "no; rm -rf /")[0] == 0
    task = kg.wait_state(task_id, "failed")
    assert task["exit_code"] == 1
    _log_with(kg, task_id, "answered 'no; rm -rf /'")
    _nothing_left(kg)


def test_attach_steps_into_the_terminal_where_a_person_answers(kg: Kugetsu, tmp_path: Path) -> None:
    """A second tmux server stands in for the person's terminal: `kugetsu attach` runs in
    it, and keys typed there reach the agent."""
    _terminal_config(kg)
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty")
    _needs_input(kg, task_id)
    tmux, outer = str(shutil.which("tmux")), str(tmp_path / "outer.sock")
    env = {k: v for k, v in kg.env.items() if k not in ("TMUX", "TMUX_PANE")}
    attach = [PY, "-m", "kugetsu_tui", "--home", str(kg.home), "attach", str(task_id)]
    subprocess.run(
        [tmux, "-S", outer, "new-session", "-d", "-x", "120", "-y", "40", "--", *attach], env=env, check=True
    )
    try:
        inner = [tmux, "-S", str(kg.home / "tmux.sock"), "list-clients"]
        wait_until(lambda: subprocess.run(inner, capture_output=True, text=True).stdout.strip(), "the attach")
        assert kg.task(task_id)["needs_input"] is None, "attaching clears the flag"
        subprocess.run([tmux, "-S", outer, "send-keys", "y", "Enter"], check=True)
        kg.wait_state(task_id, "succeeded")
        _log_with(kg, task_id, "answered 'y'")
    finally:
        subprocess.run([tmux, "-S", outer, "kill-server"], capture_output=True)
    _nothing_left(kg)


def test_a_paused_terminal_agent_stops_and_goes_on(kg: Kugetsu) -> None:
    _terminal_config(kg)
    kg.start_supervisor()
    task_id = kg.add("ask", "--agent", "tty")
    _needs_input(kg, task_id)
    assert kg.main("pause", str(task_id))[0] == 0
    kg.wait_state(task_id, "paused")
    agent = wait_until(lambda: kg.agent_processes(), "the agent")[0]
    wait_until(lambda: agent.status() == psutil.STATUS_STOPPED, "the agent to be stopped")
    assert kg.main("resume", str(task_id))[0] == 0
    kg.wait_state(task_id, "running")
    assert kg.main("send", str(task_id), "y")[0] == 0
    kg.wait_state(task_id, "succeeded")
    _nothing_left(kg)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancel_and_timeout_end_a_terminal_agent_and_its_session(kg: Kugetsu, how: str) -> None:
    _terminal_config(kg, kill_grace="0.5s")
    kg.start_supervisor()
    options = ("--timeout", "2s", "--max-attempts", "1") if how == "timeout" else ()
    task_id = kg.add(
        script(["ignore-term"], ["spawn-children", 1, 60], ["hang", 60]), "--agent", "tty", *options
    )
    kg.wait_state(task_id, "running")
    wait_until(lambda: len(kg.agent_processes(children=True)) == 3, "the agent, its child and grandchild")
    assert _tmux_servers(kg), "the agent runs on the home's tmux server"
    if how == "cancel":
        assert kg.main("cancel", str(task_id))[0] == 0
        kg.wait_state(task_id, "cancelled")
    else:
        task = kg.wait_state(task_id, "failed")
        assert task["reason"] == "timed out after 2s"
    _nothing_left(kg)


def test_a_killed_supervisor_is_succeeded_by_one_that_adopts_a_terminal_agent(kg: Kugetsu) -> None:
    _terminal_config(kg)
    gate = kg.root / "gate"
    first = kg.start_supervisor()
    task_id = kg.add(script(["say", "started"], ["wait-file", gate], ["exit", 3]), "--agent", "tty")
    kg.wait_state(task_id, "running")
    wait_until(lambda: kg.agent_processes(), "the agent to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(WAIT)
    kg.start_supervisor()
    wait_until(
        lambda: "task_adopted" in [e["type"] for e in kg.events(task_id)], "the new supervisor to adopt it"
    )
    gate.touch()
    task = kg.wait_state(task_id, "failed", "succeeded", "queued")
    assert task["exit_code"] == 3, "its exit status came from its exit file"
    _log_with(kg, task_id, "started")
    kg.main("cancel", str(task_id))
    _nothing_left(kg)


def test_notify_from_inside_an_agent_raises_needs_input_and_output_clears_it(kg: Kugetsu) -> None:
    kg.start_supervisor()
    answered, done = kg.root / "answered", kg.root / "done"
    steps = (["notify", kg.home, "waiting for approval"], ["wait-file", answered], ["say", "going on"])
    task_id = kg.add(script(*steps, ["wait-file", done]))
    assert _needs_input(kg, task_id) == "waiting for approval"
    needs = [e for e in kg.events(task_id) if e["type"] == "task_needs_input"]
    assert [(e["reason"], e["by"]) for e in needs] == [("waiting for approval", "notify")]
    # Output the agent wrote before the supervisor first saw the flag does not clear it:
    # answer only after a whole sample began once the flag was up.
    raised = time.time()
    wait_until(lambda: _last_sample(kg) > raised + SAMPLE_EVERY, "a sample after the flag", WAIT * 2)
    assert kg.task(task_id)["needs_input"] == "waiting for approval"
    answered.touch()
    wait_until(lambda: kg.task(task_id)["needs_input"] is None, "new output to clear the flag", WAIT * 2)
    assert kg.task(task_id)["state"] == "running"
    done.touch()
    assert kg.wait_state(task_id, "succeeded")["needs_input"] is None


def test_notify_outside_an_agent_and_attach_or_send_to_a_task_without_a_terminal_are_refused(
    kg: Kugetsu,
) -> None:
    gate = kg.root / "gate"
    kg.start_supervisor()
    task_id = kg.add(script(["wait-file", gate]))
    kg.wait_state(task_id, "running")
    for args in (("attach", str(task_id)), ("send", str(task_id), "y"), ("attach", "99")):
        done = kg.cli(*args)
        assert done.returncode == 2, done
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "no live terminal" in kg.cli("attach", str(task_id)).stderr
    done = kg.cli("notify", "hello")
    assert done.returncode == 2 and "inside an agent" in done.stderr
    assert kg.task(task_id)["needs_input"] is None
    gate.touch()
    kg.wait_state(task_id, "succeeded")


def test_a_terminal_agent_without_tmux_fails_saying_so(kg: Kugetsu, tmp_path: Path) -> None:
    _terminal_config(kg, max_attempts=1)
    kg.env["PATH"] = str(tmp_path / "empty")
    kg.start_supervisor()
    task_id = kg.add("ok", "--agent", "tty", "--max-attempts", "1")
    task = kg.wait_state(task_id, "failed")
    assert "tmux" in task["reason"] and "\n" not in task["reason"]


async def test_the_dashboard_marks_a_task_that_needs_input_and_notifies_once(tmp_path: Path) -> None:
    from kugetsu_tui import cli
    from kugetsu_tui.engine.model import State
    from tests.helpers.tui import DashboardHarness, wait_for

    harness = DashboardHarness(tmp_path)
    try:
        task = harness.add("a task that will ask")
        app = harness.app()
        async with app.run_test(size=(120, 35)) as pilot:
            active = app.dashboard.active
            await wait_for(pilot, lambda: harness.state(task) is State.RUNNING, "the agent to run")
            await wait_for(pilot, lambda: active.row_count == 1, "the Active row")
            home = str(harness.home.root)
            assert cli.main(["--home", home, "notify", "--task", str(task), "waiting for approval"]) == 0
            await wait_for(pilot, lambda: "! input" in str(active.get_row_at(0)), "the marked row")
            assert "1 need input" in str(active.border_title)
            notes = [(n.title, n.message) for n in app._notifications]
            assert notes == [(f"task {task} needs input", "waiting for approval")]
            harness.store.set_needs_input(task, None, time.time())
            await wait_for(pilot, lambda: "! input" not in str(active.get_row_at(0)), "the mark to go")
            assert "need input" not in str(active.border_title)
    finally:
        harness.cleanup()
