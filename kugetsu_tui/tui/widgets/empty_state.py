"""The empty state: shown while nothing is queued or live, it says what a person can do
next from where they stand — which agents were found on PATH (and which not), the command
that tries the demo, the ways to add a task, and where the config lives."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from kugetsu_tui.engine.text import printable


class EmptyState(Static):
    """A few lines of help in place of an empty queue; reads nothing itself."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._shown: object = None

    def show(
        self,
        *,
        found: Mapping[str, str | None],
        default_agent: str,
        offered: str,
        command: str,
        config_path: Path,
    ) -> None:
        key = (tuple(found.items()), default_agent, offered, command, str(config_path))
        if key == self._shown:
            return
        self._shown = key
        self.update(render_help(found, default_agent, offered, command, config_path))


def render_help(
    found: Mapping[str, str | None], default_agent: str, offered: str, command: str, config_path: Path
) -> Text:
    text = Text()
    text.append("Nothing queued or running yet.\n", style="bold")

    def line(label: str, *parts: tuple[str, str]) -> None:
        text.append(f"  {label:<10}", style="bright_black")
        for part, style in parts:
            text.append(printable(part), style=style)
        text.append("\n")

    have = [name for name, where in found.items() if where]
    missing = [name for name, where in found.items() if not where]
    line(
        "agents",
        *[(f"✓ {name}  ", "green") for name in have],
        *[(f"✗ {n}  ", "bright_black") for n in missing],
    )
    if not have:
        line(
            "", ("none on PATH: install one (claude, codex, opencode, aider) or add [agents.NAME]", "yellow")
        )
    elif offered != default_agent:
        line("", (f"default_agent {default_agent} is not on PATH; n offers {offered}", "yellow"))
    line("try", (f"{command} demo", "bold"), ("   simulated agents in a sandbox, nothing installed", ""))
    agent = "" if offered == default_agent else f" --agent {shlex.quote(offered)}"
    add = f'{command} add{agent} "fix the flaky test"'
    line("add", ("n", "bold"), (" here, or  ", ""), (add, "bold"), ("  in a git repo", ""))
    line("config", (str(config_path), ""), ("   every key: config/kugetsu.example.toml", "bright_black"))
    return text
