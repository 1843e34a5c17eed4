"""`agents`: the agents this home knows (the built-in presets and the config's
[agents.NAME] tables), whether each one's program is on PATH (and its version, asked only
with --versions), how it takes its prompt and how its output is read, and the default."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kugetsu_tui.commands.context import Context
from kugetsu_tui.engine.agents import PRESETS, masked
from kugetsu_tui.engine.config import AgentConfig, format_duration
from kugetsu_tui.engine.intake import found_program
from kugetsu_tui.engine.text import one_line

VERSION_TIMEOUT = 3.0  # seconds a `--version` may take; the CLIs answer in well under one
VERSION_CHARS = 60


def cmd_agents(ctx: Context, args: argparse.Namespace) -> int:
    agents = sorted(ctx.config.agents.values(), key=lambda a: a.name)
    found = {a.name: found_program(a) for a in agents}
    versions: dict[str, str | None] = {}
    if args.versions:
        # One short-lived process per installed agent, all at once: as slow as the slowest.
        with ThreadPoolExecutor(max_workers=max(len(agents), 1)) as pool:
            asked = {a.name: pool.submit(version, found[a.name], a) for a in agents if found[a.name]}
            versions = {name: future.result() for name, future in asked.items()}
    rows = [_row(a, ctx.config.default_agent, found[a.name], versions.get(a.name)) for a in agents]
    if args.json:
        print(json.dumps({"default_agent": ctx.config.default_agent, "agents": rows}))
        return 0
    _print_table(rows, with_versions=args.versions)
    return 0


def version(program: str | None, agent: AgentConfig) -> str | None:
    """The first line `program --version` prints, or None when it says nothing in time."""
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "--version"],
            env={**os.environ, **agent.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    said = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()
    return one_line(said[0])[:VERSION_CHARS] if said and done.returncode == 0 else None


def _row(agent: AgentConfig, default: str, found: str | None, version: str | None) -> dict[str, Any]:
    preset = PRESETS.get(agent.name)
    return {
        "name": agent.name,
        "default": agent.name == default,
        "built_in": preset is not None,
        "command": list(agent.command),
        "program": agent.command[0] if agent.command else None,
        "found": found,
        "install": preset.install if preset is not None and preset.install else None,
        "version": version,
        "prompt_via": str(agent.prompt_via),
        "output": agent.output,
        "timeout": agent.timeout,
        "max_live": agent.max_live,
        "stall_after": agent.stall_after,
        "rate_limit": list(agent.rate_limit),  # what in its output counts as a rate limit
        "fatal": list(agent.fatal),  # and as an error no retry can fix
        "suspend_after": agent.suspend_after,
        # how a retry after a rate limit, timeout … continues its session ({session}, {prompt})
        "resume": list(agent.resume_command) if agent.resume and agent.resume_command else None,
        "env": masked(agent.env),
    }


def _print_table(rows: list[dict[str, Any]], *, with_versions: bool) -> None:
    header = ["AGENT", "PROGRAM", "PROMPT", "OUTPUT", "TIMEOUT"] + (["VERSION"] if with_versions else [])
    table = [header]
    for row in rows:
        name = one_line(row["name"]) + (" (default)" if row["default"] else "")
        if row["found"]:
            program = one_line(row["found"])
        else:
            install = f"; {row['install']}" if row["install"] else ""
            program = f"{one_line(row['program'] or '')}: not found{install}"
        timeout = format_duration(row["timeout"]) if row["timeout"] else "-"
        line = [name, program, row["prompt_via"], row["output"], timeout]
        table.append(line + ([row["version"] or "-"] if with_versions else []))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
