"""The local executor: each attempt is a process group on this machine, started under the
sh wrapper that writes its exit status (engine/runner.py does the work).

Exits are learned from a pidfd read by the event loop; processes that left the group
(setsid) are still the task's, found by the marker every agent inherits; what outlives a
settled attempt is found by its session, its marker and the descendants seen as it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence

from kugetsu_tui.engine import markers, runner, terminal
from kugetsu_tui.engine.executor import Launch, Leftovers
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.runner import Spawned


class LocalExecutor:
    def __init__(self, home: Home) -> None:
        self.home = home
        self._pidfds: dict[int, tuple[asyncio.AbstractEventLoop, int]] = {}

    def spawn(self, launch: Launch) -> Spawned:
        env = {
            **launch.env,
            markers.MARKER: markers.run_marker(
                self.home.root, launch.task_id, launch.attempt, launch.admitted_at
            ),
        }
        if launch.terminal:
            # The wrapper runs in a tmux pane: not our child, its status is in its exit file.
            return terminal.spawn(
                self.home.root,
                launch.task_id,
                launch.argv,
                cwd=launch.cwd,
                run_dir=launch.run_dir,
                attempt=launch.attempt,
                env=env,
                stdin=launch.stdin,
            )
        return runner.spawn(
            launch.argv,
            cwd=launch.cwd,
            run_dir=launch.run_dir,
            attempt=launch.attempt,
            env=env,
            stdin=launch.stdin,
        )

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        pidfd = runner.open_pidfd(pid)
        if pidfd is None:
            on_exit()
            return
        loop = asyncio.get_running_loop()
        self._pidfds[pid] = (loop, pidfd)

        def exited() -> None:
            self.unwatch(pid)
            on_exit()

        loop.add_reader(pidfd, exited)

    def unwatch(self, pid: int) -> None:
        watched = self._pidfds.pop(pid, None)
        if watched is not None:
            loop, pidfd = watched
            loop.remove_reader(pidfd)
            os.close(pidfd)

    def exit_status(self, task_id: int, pid: int, *, child: bool) -> int | None:
        # Our own child is reaped now so no zombie is left; an adopted one's wrapper wrote a file.
        code = runner.reap(pid) if child else None
        if code is None:  # not our child after all: a terminal agent's wrapper is tmux's
            code = runner.read_exit_file(self.home.run_dir(task_id))
        return code

    def has_exited(self, pid: int) -> bool:
        watched = self._pidfds.get(pid)
        if watched is None:
            return not runner.is_same_process(pid, None)
        return runner.pidfd_exited(watched[1])

    def ended_at(self, task_id: int) -> float | None:
        # The wrapper writes the exit file as the agent ends: its time is the agent's end.
        return runner.exit_file_time(self.home.run_dir(task_id))

    def still_running(self, pid: int) -> bool:
        return runner.group_alive(pid)

    def terminate(self, task_id: int, pid: int) -> None:
        runner.signal_group(pid, signal.SIGTERM)
        runner.signal_group(pid, signal.SIGCONT)  # a stopped process cannot act on TERM
        self._signal_strays(task_id, pid, signal.SIGTERM)

    def kill(self, task_id: int, pid: int) -> None:
        runner.signal_group(pid, signal.SIGKILL)
        self._signal_strays(task_id, pid, signal.SIGKILL)

    def kill_strays(self, task_id: int, pid: int) -> None:
        # Only the strays: the group itself has ended, and its id may already be another's.
        self._signal_strays(task_id, pid, signal.SIGKILL)

    def end_leftovers(self, settled: Sequence[Leftovers]) -> int:
        import psutil

        ended = 0
        attempts = [
            (markers.run_marker(self.home.root, s.task_id, s.attempt, s.admitted_at), s.pid, s.started)
            for s in settled
        ]
        for pid in markers.leftover_processes(self.home.root, attempts):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                ended += 1
        # Descendants seen while the attempt ran, that escaped both (setsid and env -i):
        # the very same process (pid and create time), never a pid given to another since.
        for pid, created in {d for s in settled for d in s.descendants}:
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
                    ended += 1
            except psutil.Error:
                continue
        return ended

    def pause(self, pid: int) -> bool:
        if terminal.is_pane(pid):
            terminal.stop_all_but_leader(pid)  # tmux would continue a stopped pane at once
        else:
            runner.signal_group(pid, signal.SIGSTOP)
        if not runner.is_same_process(pid, None):
            # It exited just before the signal (its exit not yet seen): it is about to be
            # settled, not paused. Whatever it left in its group must go on, to be ended.
            runner.signal_group(pid, signal.SIGCONT)
            return False
        return True

    def resume(self, pid: int) -> None:
        runner.signal_group(pid, signal.SIGCONT)

    def is_running(self, pid: int, started: float | None) -> bool:
        return runner.is_same_process(pid, started)

    def pid_reused(self, pid: int, started: float | None) -> bool:
        now_started = runner.start_time(pid)
        return now_started is not None and started is not None and not runner.same_start(started, now_started)

    def find(self, task_id: int, attempt: int, admitted_at: float | None) -> Spawned | None:
        return markers.find_wrapper(self.home.root, task_id, attempt, admitted_at)

    def _signal_strays(self, task_id: int, pid: int, sig: signal.Signals) -> None:
        """Descendants that left the attempt's process group (setsid) are still its own:
        they carry the task's marker in their environment."""
        for stray in markers.stray_processes(self.home.root, task_id, pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(stray, sig)
                if sig is signal.SIGTERM:
                    os.kill(stray, signal.SIGCONT)
