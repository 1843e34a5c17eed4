"""config/kugetsu.example.toml, made from the key tables (`python -m kugetsu_tui.engine.config --example`)."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from kugetsu_tui.engine.config.agent_keys import AGENT, HOOK
from kugetsu_tui.engine.config.keys import BUILTIN_AGENTS, REPO, SECTIONS, TOP, Key
from kugetsu_tui.engine.config.kinds import Duration, Kind, Size, format_duration, format_size

EXAMPLE_HEADER = """\
# kugetsu-tui configuration: every key, its default, one comment each.
# Made from kugetsu_tui/engine/config/keys.py by: python -m kugetsu_tui.engine.config --example
# A trailing comment gives a key's bounds.
# Copy to $KUGETSU_HOME/config.toml (default ~/.local/state/kugetsu/config.toml).
# A missing file means all defaults. Durations: "500ms", "90s", "10m", "24h", "2d".
# Sizes: "512MB", "2GiB" (or a number of bytes)."""

HOOK_EXAMPLES = """\
# A desktop notification, at most one every 30 seconds:
# [[hooks]]
# on = ["task_completed", "task_error"]
# command = ["sh", "-c", "notify-send kugetsu \\"$(jq -r .text)\\""]
# debounce = "30s"

# A webhook (the JSON goes to curl on stdin):
# [[hooks]]
# on = ["task_error"]
# command = ["curl", "-fsS", "-H", "Content-Type: application/json", "--data-binary", "@-", "https://example.invalid/hook"]
# timeout = "10s\""""


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=92, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)


def _toml(kind: Kind, value: Any) -> str:
    if isinstance(kind, Duration):
        return json.dumps(format_duration(value))
    if isinstance(kind, Size):
        return json.dumps(format_size(value))
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "[" + ", ".join(_toml(kind, v) for v in value) + "]"  # inline tables
    return json.dumps(value)


def _key_lines(key: Key, value: Any, doc: bool = True, commented: bool = False) -> list[str]:
    if value is None:
        value, commented = key.example, True
    line = f"{'# ' if commented else ''}{key.name} = {_toml(key.kind, value)}"
    if key.kind.limits:
        line += f"  # {key.kind.limits}"
    return [*(_comment(key.doc) if doc else []), line]


def example() -> str:
    """config/kugetsu.example.toml: every key of the tables, its default and its doc."""
    out = [EXAMPLE_HEADER, ""]
    for key in TOP.keys:
        out += _key_lines(key, key.default)
    for table in SECTIONS.values():
        out += ["", table.header]
        for key in table.keys:
            out += _key_lines(key, key.default)
    out += ["", *_comment(REPO.doc), '# [repos."~/src/app"]']
    for key in REPO.keys:
        out += _key_lines(key, None)
    out += ["", *_comment(AGENT.doc)]
    for n, (name, command) in enumerate(BUILTIN_AGENTS.items()):
        out += [*([""] if n else []), f"[agents.{name}]"]
        for key in AGENT.keys:
            if n == 0 or key.name == "command":
                out += _key_lines(key, command if key.name == "command" else key.default, doc=n == 0)
    out += ["", *_comment(HOOK.doc), "# [[hooks]]"]
    for key in HOOK.keys:
        out += _key_lines(key, key.default, commented=True)
    return "\n".join([*out, "", HOOK_EXAMPLES, ""])
