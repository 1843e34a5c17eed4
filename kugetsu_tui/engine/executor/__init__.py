"""How an admitted attempt runs: the one interface the supervisor uses to start, signal,
watch and re-find an agent's process, so that where it runs (this machine today, a
cluster later) is the executor's business and never the loop's.

An attempt is named by the id spawn() returned (`Spawned.pid`: on this machine the
wrapper's pid, which is also its process group) and by its task id, which finds the
processes that left its group and its exit file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kugetsu_tui.engine.runner import Spawned, SpawnError

__all__ = ["Executor", "Launch", "Leftovers", "SpawnError", "Spawned"]


@dataclass(frozen=True, slots=True)
class Launch:
    """One attempt of a task, ready to start: the argv is final (placeholders substituted)."""

    task_id: int
    attempt: int
    argv: Sequence[str]
    cwd: Path
    run_dir: Path  # the attempt writes its log and exit status here
    env: Mapping[str, str]
    stdin: Path | None = None
    admitted_at: float | None = None  # tells this run of the task from its earlier ones


@dataclass(frozen=True, slots=True)
class Leftovers:
    """A settled attempt, as needed to find what it started that may still be alive."""

    task_id: int
    attempt: int
    admitted_at: float | None  # as Launch.admitted_at
    pid: int  # the id spawn() gave it (0: never known)
    started: float | None  # its start time, as Spawned.started
    descendants: frozenset[tuple[int, float]]  # (pid, create time) seen in its tree as it ran


class Executor(Protocol):
    def spawn(self, launch: Launch) -> Spawned:
        """Start the attempt; SpawnError (its message is the task's reason) if it cannot."""

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        """Call on_exit once, from the running event loop, when the attempt's process ends
        (at once if it already has)."""

    def unwatch(self, pid: int) -> None:
        """Stop watching (the supervisor stops; the attempt may go on running)."""

    def exit_status(self, task_id: int, pid: int, *, child: bool) -> int | None:
        """The ended attempt's exit code (-N: killed by signal N), None if unknown. child:
        started by this supervisor; else adopted, and only its exit file can tell."""

    def has_exited(self, pid: int) -> bool:
        """True once the attempt's process has ended, even if on_exit has not been called
        yet (the loop was stopped, or has not yet got to it). Learns, never waits."""

    def ended_at(self, task_id: int) -> float | None:
        """When the ended attempt's process ended (wall clock), None if that is unknown."""

    def still_running(self, pid: int) -> bool:
        """True while anything of the attempt still runs (its agent, or what it started)."""

    def terminate(self, task_id: int, pid: int) -> None:
        """Ask the whole attempt to end (waking it if paused); kill() follows after a grace."""

    def kill(self, task_id: int, pid: int) -> None:
        """End the whole attempt now."""

    def kill_strays(self, task_id: int, pid: int) -> None:
        """End what the attempt started outside its own group, once the group has ended."""

    def end_leftovers(self, settled: Sequence[Leftovers]) -> int:
        """End whatever these settled attempts started that is still alive, however it
        got away (its own session, a cleared environment); how many were ended. Slow (it
        looks at every process): called in a thread, for many attempts at once."""

    def pause(self, pid: int) -> bool:
        """Stop the attempt's processes; False (and nothing left stopped) if it had ended."""

    def resume(self, pid: int) -> None:
        """Let a paused attempt go on."""

    def is_running(self, pid: int, started: float | None) -> bool:
        """True if the attempt recorded as (pid, started) still runs (not a recycled pid)."""

    def pid_reused(self, pid: int, started: float | None) -> bool:
        """True if pid now names a stranger's process: never signal anything of it."""

    def find(self, task_id: int, attempt: int, admitted_at: float | None) -> Spawned | None:
        """Re-find a running attempt whose id was never stored (its supervisor died first)."""
