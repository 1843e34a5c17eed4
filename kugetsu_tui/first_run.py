"""First run: what a newcomer can do from where they stand (the command to type, the
agents installed), shared by the CLI's hints and the dashboard's empty state."""

from __future__ import annotations

from collections.abc import Callable

from kugetsu_tui.engine.config import Config


def kugetsu_command() -> str:
    """How to call the kugetsu in use from where the person stands: `kugetsu` when that
    is the one on PATH, else its full path (or `python -m kugetsu_tui`)."""
    import os
    import shlex
    import shutil
    import sys
    from pathlib import Path

    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "kugetsu":
        running = Path(argv0).absolute()
        on_path = shutil.which("kugetsu")
        if on_path and Path(on_path).resolve() == running.resolve():
            return "kugetsu"
        return shlex.quote(str(running))
    return f"{shlex.quote(sys.executable)} -m kugetsu_tui"


def agents_found(config: Config, which: Callable[[str], str | None]) -> dict[str, str | None]:
    """Each configured agent -> where its program was found on PATH, or None."""
    return {name: which(agent.command[0]) for name, agent in config.agents.items()}


def agent_to_offer(config: Config, which: Callable[[str], str | None]) -> str:
    """The agent a new task should default to: the configured default when it is installed,
    else the first agent that is, else the configured default all the same."""
    found = agents_found(config, which)
    if found.get(config.default_agent):
        return config.default_agent
    return next((name for name, where in found.items() if where), config.default_agent)
