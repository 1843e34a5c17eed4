"""`kugetsu agents`: every known agent, whether its program is found on the PATH it would
run with (and its version when asked), its prompt_via and output format, the default; the
same as JSON. Real programs on a real PATH, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers.harness import PY, Kugetsu


def _bin(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    program = folder / name
    program.write_text(f"#!/bin/sh\n{body}\n")
    program.chmod(0o755)
    return program


def test_agents_lists_presets_and_configured_ones_with_what_is_installed(kg: Kugetsu, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    versioned = _bin(bin_dir, "toolbox", 'echo "toolbox 1.2.3 (build \\033[31mred\\033[0m)"; echo more')
    _bin(bin_dir, "sleepy", f"exec {shutil.which('sleep')} 30")  # never answers
    kg.write_config(
        default_agent="tool",
        agents={
            "fake": {"command": [PY, "-c", "pass", "{prompt}"]},
            "tool": {"command": ["toolbox", "{prompt}"], "prompt_via": "argv", "env": {"PATH": str(bin_dir)}},
            "reader": {"command": ["toolbox"], "prompt_via": "stdin", "env": {"PATH": str(bin_dir)}},
            "sleepy": {"command": ["sleepy", "{prompt}"], "env": {"PATH": str(bin_dir), "TOKEN": "secret"}},
            "ghost": {"command": ["kugetsu-no-such-program", "{prompt}"], "timeout": "5m"},
            "claude": {"env": {"PATH": str(tmp_path / "empty")}},
        },
    )

    shown = kg.cli("agents")
    assert shown.returncode == 0 and shown.stderr == "", shown
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert shown.stdout.splitlines()[0].split() == ["AGENT", "PROGRAM", "PROMPT", "OUTPUT", "TIMEOUT"]
    assert set(lines) == {"aider", "claude", "codex", "opencode", "fake", "tool", "reader", "sleepy", "ghost"}
    assert lines["tool"].split()[:4] == ["tool", "(default)", str(versioned), "argv"]
    assert lines["reader"].split()[2:4] == ["stdin", "text"]
    assert "kugetsu-no-such-program: not found" in lines["ghost"] and lines["ghost"].endswith("5m")
    assert "claude: not found; npm install -g @anthropic-ai/claude-code" in lines["claude"]
    assert "claude-stream-json" in lines["claude"]
    assert "secret" not in shown.stdout

    asked = kg.cli("agents", "--versions", "--json")
    assert asked.returncode == 0, asked
    report = json.loads(asked.stdout)
    agents = {a["name"]: a for a in report["agents"]}
    assert report["default_agent"] == "tool" and agents["tool"]["default"] is True
    # The first line, terminal escapes gone; a program that does not answer in time: none.
    assert agents["tool"]["version"] == "toolbox 1.2.3 (build red)"
    assert agents["sleepy"]["version"] is None and agents["sleepy"]["env"] == {
        "PATH": "••••",
        "TOKEN": "••••",
    }
    assert agents["ghost"]["found"] is None and agents["ghost"]["version"] is None
    assert agents["claude"]["built_in"] is True and agents["claude"]["found"] is None
    assert agents["reader"]["prompt_via"] == "stdin" and agents["tool"]["found"] == str(versioned)
    assert r"\b429\b" in agents["claude"]["rate_limit"] and "invalid api key" in agents["claude"]["fatal"]
    assert agents["tool"]["rate_limit"] == [] and agents["ghost"]["timeout"] == 300
