"""Load, validate and save `config.toml`.

Its keys are declared once, in keys.py (kind, default, bounds, doc); validation here, the
dataclasses' defaults and config/kugetsu.example.toml (example.py) come from those tables.
Every problem is a ConfigError whose one line names the file, the key and what was
expected; nothing here raises anything else for bad input.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kugetsu_tui.engine.agents import PRESETS, masked
from kugetsu_tui.engine.config.agent_keys import AGENT, HOOK
from kugetsu_tui.engine.config.keys import (
    BUDGET,
    BUILTIN_AGENTS,
    CAP_MODES,
    CAPACITY,
    EVENT_NAMES,
    EXECUTOR,
    MCP,
    PLACEHOLDERS,
    PRESSURE_MODES,
    QUEUE,
    REPO,
    REVIEW,
    SECTIONS,
    TABLES,
    TOP,
    TOP_KEYS,
    WEB,
    WORKTREE,
    Table,
)
from kugetsu_tui.engine.config.kinds import (
    DURATION_HINT,
    SIZE_HINT,
    Answer,
    Invalid,
    format_duration,
    parse_duration,
    parse_size,
)
from kugetsu_tui.engine.model import CapMode, EventType, MemoryPressure, OnInterrupt, PromptVia
from kugetsu_tui.errors import ConfigError

__all__ = [
    "BUILTIN_AGENTS",
    "CAP_MODES",
    "DEFAULT_EST_CPU",
    "DEFAULT_EST_RSS",
    "DURATION_HINT",
    "EVENT_NAMES",
    "PLACEHOLDERS",
    "PRESSURE_MODES",
    "SIZE_HINT",
    "AgentConfig",
    "Answer",
    "Config",
    "Hook",
    "builtin_agents",
    "config_from_dict",
    "format_duration",
    "load_config",
    "parse_duration",
    "parse_size",
    "read_toml",
    "save_setting",
]

_TOP = (
    TOP.defaults()
    | CAPACITY.defaults()
    | QUEUE.defaults()
    | WORKTREE.defaults()
    | REVIEW.defaults()
    | EXECUTOR.defaults()
    | MCP.defaults()
    | WEB.defaults()
    | BUDGET.defaults()
)
_AGENT = AGENT.defaults()
_HOOK = HOOK.defaults()
DEFAULT_EST_RSS: float = _AGENT["est_rss"]
DEFAULT_EST_CPU: float = _AGENT["est_cpu"]


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str
    command: tuple[str, ...]
    est_rss: float = DEFAULT_EST_RSS  # bytes one agent is expected to use, before any measured
    est_cpu: float = DEFAULT_EST_CPU  # cores one agent is expected to keep busy
    max_live: int | None = _AGENT["max_live"]
    rate_limit: tuple[str, ...] = ()
    cooldown: float = _AGENT["cooldown"]
    cooldown_max: float = _AGENT["cooldown_max"]
    prompt_via: PromptVia = _AGENT["prompt_via"]
    output: str = "text"  # how its log is read (agents.OUTPUTS)
    env: Mapping[str, str] = field(default_factory=dict)  # for this agent only; shown masked
    timeout: float | None = _AGENT["timeout"]
    fatal: tuple[str, ...] = ()
    suspend_after: int = _AGENT["suspend_after"]
    stall_after: float | None = _AGENT["stall_after"]
    on_stall: str = _AGENT["on_stall"]
    args: tuple[str, ...] = ()  # folded into `command`, before its {prompt} element
    terminal: bool = _AGENT["terminal"]  # in a tmux pane a person can attach to
    answer: tuple[Answer, ...] = ()  # rules that answer a terminal agent's routine prompts
    timeout_counts_waiting: bool = _AGENT["timeout_counts_waiting"]  # false: waiting pauses it
    idle_after: float = _AGENT["idle_after"]  # a still screen asking this long: needs input
    prompts: tuple[str, ...] = ()  # its own patterns of a line that asks, beside terminal.PROMPT
    resume: bool = _AGENT["resume"]  # a retry after a rate limit, timeout … continues the session
    # The argv that continues session {session} with the message {prompt}: the preset's, with
    # `args` folded in, while `command` is the preset's; () for an agent that cannot resume.
    resume_command: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Unset in the file: the built-in preset's value, else the plain one.
        preset = PRESETS.get(self.name)
        if self.resume_command is None:  # (derived once, before args are folded: a copy keeps it)
            object.__setattr__(self, "resume_command", _resume_form(self.name, self.command, self.args))
        if self.output is None:
            object.__setattr__(self, "output", preset.output if preset else "text")
        for name in ("rate_limit", "fatal"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(preset, name) if preset else ())
        if self.env is None:
            object.__setattr__(self, "env", {})
        if self.answer is None:
            object.__setattr__(self, "answer", ())
        if self.prompts is None:
            object.__setattr__(self, "prompts", ())
        if self.args:
            at = next((i for i, part in enumerate(self.command) if "{prompt}" in part), len(self.command))
            object.__setattr__(self, "command", (*self.command[:at], *self.args, *self.command[at:]))
            object.__setattr__(self, "args", ())

    def __repr__(self) -> str:  # env values never shown, not even in a traceback
        return f"AgentConfig(name={self.name!r}, command={self.command!r}, env={masked(self.env)!r})"


def _resume_form(name: str, command: tuple[str, ...], args: tuple[str, ...]) -> tuple[str, ...]:
    """The preset's resume form with `args` where its {args} element stands, for an agent run
    by its preset's own command; () otherwise (how another command resumes is not known)."""
    preset = PRESETS.get(name)
    if preset is None or not preset.resume or command != preset.command:
        return ()
    form = preset.resume
    at = form.index("{args}") if "{args}" in form else len(form)
    return (*form[:at], *args, *form[at + 1 :])


@dataclass(frozen=True, slots=True)
class Hook:
    """A command run with an event's JSON on stdin (never on its command line)."""

    on: tuple[EventType, ...]
    command: tuple[str, ...]
    timeout: float = _HOOK["timeout"]
    debounce: float = _HOOK["debounce"]  # > 0: one summary event for everything in that window


@dataclass(frozen=True, slots=True)
class Config:
    cap: int = _TOP["cap"]
    cap_mode: CapMode = _TOP["cap_mode"]
    cap_min: int = _TOP["cap_min"]
    cap_max: int = _TOP["cap_max"]
    memory_reserve: float = _TOP["memory_reserve"]
    memory_pressure: MemoryPressure = _TOP["memory_pressure"]
    max_attempts: int = _TOP["max_attempts"]
    retry_backoff: float = _TOP["retry_backoff"]
    expire_after: float = _TOP["expire_after"]
    kill_grace: float = _TOP["kill_grace"]
    max_log: float = _TOP["max_log"]
    on_interrupt: OnInterrupt = _TOP["on_interrupt"]
    max_queued: int | None = _TOP["max_queued"]  # None: no bound on the queue
    mcp_on_full: str = _TOP["mcp_on_full"]  # "queue" or "reject" an MCP add when every slot is taken
    worktree_setup: tuple[str, ...] = _TOP["worktree_setup"]
    worktree_base: str | None = _TOP["worktree_base"]
    executor_kind: str = _TOP["executor_kind"]
    executor_address: str = _TOP["executor_address"]
    web_token_file: str | None = _TOP["web_token_file"]
    web_max_sessions: int = _TOP["web_max_sessions"]
    worktree_commit: bool = _TOP["worktree_commit"]
    review_strategy: str = _TOP["review_strategy"]  # how `kugetsu merge` lands a task by default
    # [budget]: admission stops once the agents reported this much spent (None: no limit).
    budget_cost_usd: float | None = _TOP["budget_cost_usd"]
    budget_tokens: int | None = _TOP["budget_tokens"]
    repo_max_live: Mapping[str, int] = field(default_factory=dict)
    hooks: tuple[Hook, ...] = ()
    default_agent: str = _TOP["default_agent"]
    default_timeout: float | None = _TOP["default_timeout"]
    agents: Mapping[str, AgentConfig] = field(default_factory=lambda: builtin_agents())
    path: Path | None = None

    @property
    def agent_max_live(self) -> dict[str, int]:
        """Agents with a limit of their own: name -> max_live."""
        return {a.name: a.max_live for a in self.agents.values() if a.max_live}

    def agent_ceilings(self, cap: int) -> dict[str, int]:
        """The most of each agent's tasks live at once under `cap`: its max_live, else the cap."""
        return {a.name: max(min(a.max_live or cap, cap), 1) for a in self.agents.values()}

    def agent(self, name: str) -> AgentConfig:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents))
            raise ConfigError(f"unknown agent {name!r} (expected one of: {known})") from None


def builtin_agents() -> dict[str, AgentConfig]:
    """The agents known with no config, as their presets say."""
    return {
        n: AgentConfig(n, p.command, output=p.output, rate_limit=p.rate_limit, fatal=p.fatal)
        for n, p in PRESETS.items()
    }


# --- validation -----------------------------------------------------------------------


class _Reader:
    """Converts each table of the parsed TOML by its declaration, rejecting unknown keys."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, detail: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {detail}")

    def unknown(self, data: Mapping[str, Any], where: str, allowed: frozenset[str]) -> None:
        for key in data:
            if key not in allowed:
                place = f"{where} {key}" if where else key
                names = ", ".join(sorted(allowed))
                raise ConfigError(f"{self.path}: unknown key {place} (expected one of: {names})")

    def read(
        self, data: Any, table: Table, where: str, base: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """{field: value} for every key of the table; `base` replaces the declared defaults."""
        if not isinstance(data, dict):
            raise self.error(where, f"expected {table.shape}, got {data!r}")
        self.unknown(data, where, frozenset(k.name for k in table.keys))
        out: dict[str, Any] = {}
        for key in table.keys:
            place = f"{where} {key.name}".strip()
            if key.name in data:
                try:
                    out[key.field] = key.kind(data[key.name])
                except Invalid as err:
                    raise self.error(place, str(err)) from None
                except (TypeError, ValueError):
                    raise self.error(place, f"expected {key.kind.expected}, got {data[key.name]!r}") from None
            elif base is not None and key.field in base:
                out[key.field] = base[key.field]
            elif key.required:
                raise self.error(place, f"missing (expected {key.kind.expected})")
            else:
                out[key.field] = key.default
        return out


def config_from_dict(data: Mapping[str, Any], path: Path) -> Config:
    r = _Reader(path)
    r.unknown(data, "", TOP_KEYS)
    values = r.read({k: v for k, v in data.items() if k not in TABLES}, TOP, "")
    for name, table in SECTIONS.items():
        values |= r.read(data.get(name, {}), table, table.header)
    agents = _agents(r, data.get("agents", {}))
    repo_max_live = _repo_limits(r, data.get("repos", {}))
    hooks = _hooks(r, data.get("hooks", []))
    if values["default_agent"] not in agents:
        known = ", ".join(sorted(agents))
        raise r.error(
            "default_agent", f"unknown agent {values['default_agent']!r} (expected one of: {known})"
        )
    if values["cap_min"] > values["cap_max"]:
        raise r.error(
            "[capacity] min", f"expected at most max ({values['cap_max']}), got {values['cap_min']}"
        )
    return Config(**values, repo_max_live=repo_max_live, hooks=hooks, agents=agents, path=path)


def _agents(r: _Reader, raw: Any) -> dict[str, AgentConfig]:
    """The built-in agents, overridden or joined by the file's [agents.NAME] tables."""
    agents = builtin_agents()
    if not isinstance(raw, dict):
        raise r.error("[agents]", f"expected a table, got {raw!r}")
    for name, spec in raw.items():
        base = {"command": agents[name].command} if name in agents else None
        agents[name] = AgentConfig(name, **r.read(spec, AGENT, f"[agents.{name}]", base))
    return agents


def _repo_limits(r: _Reader, raw: Any) -> dict[str, int]:
    """[repos."PATH"] max_live, by the repo's resolved path."""
    if not isinstance(raw, dict):
        raise r.error("[repos]", f"expected a table, got {raw!r}")
    limits = {}
    for repo, spec in raw.items():
        limit = r.read(spec, REPO, f'[repos."{repo}"]')["max_live"]
        if limit is not None:
            limits[str(Path(repo).expanduser().resolve())] = limit
    return limits


def _hooks(r: _Reader, raw: Any) -> tuple[Hook, ...]:
    if not isinstance(raw, list):
        raise r.error("[[hooks]]", f"expected an array of tables ([[hooks]]), got {raw!r}")
    return tuple(Hook(**r.read(spec, HOOK, f"[[hooks]] #{n}")) for n, spec in enumerate(raw, 1))


def read_toml(path: Path) -> dict[str, Any]:
    """The file's raw table; {} when it does not exist."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (expected a TOML file)") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def load_config(path: Path) -> Config:
    """A missing file means all defaults; a bad one raises ConfigError."""
    return config_from_dict(read_toml(path), path)


def save_setting(path: Path, section: str, key: str, value: Any) -> Config:
    """Set one key and write the file back, keeping every other key. Returns the new config.

    The result is validated before anything is written, so a bad value leaves the file
    as it was."""
    import tomli_w

    data = read_toml(path)
    table = data.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{section}]: expected a table, got {table!r}")
    table[key] = value
    config = config_from_dict(data, path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        tomli_w.dump(data, out)
    os.replace(tmp, path)
    return config
