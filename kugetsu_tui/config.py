"""Load, validate and save `config.toml`.

Owns the schema of the config file: every key, its type and its default. Reads with
tomllib, writes back with tomli-w (keeping the user's other keys). Every problem is a
ConfigError whose one line names the file, the key and what was expected; nothing here
raises anything else for bad input.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kugetsu_tui.engine.model import EventType
from kugetsu_tui.errors import ConfigError

EVENT_NAMES = frozenset(str(e) for e in EventType)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
DURATION_HINT = 'a duration like "90s", "10m" or "24h"'


def parse_duration(text: str) -> float:
    """'90s' -> 90.0, '10m' -> 600.0, '24h' -> 86400.0; a bare number is seconds.

    Raises ValueError for anything else (the caller names the key)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


PLACEHOLDERS = ("{prompt}", "{task_id}", "{worktree}")

# Agents kugetsu knows without any config. `{prompt}` is one whole argv element.
BUILTIN_AGENTS: dict[str, tuple[str, ...]] = {
    "opencode": ("opencode", "run", "{prompt}"),
    "claude": ("claude", "-p", "{prompt}"),
    "codex": ("codex", "exec", "{prompt}"),
    "aider": ("aider", "--yes", "--message", "{prompt}"),
}


DEFAULT_EST_RSS = 1.0 * 2**30
DEFAULT_EST_CPU = 0.5


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str
    command: tuple[str, ...]
    est_rss: float = DEFAULT_EST_RSS  # bytes one agent is expected to use, before any measured
    est_cpu: float = DEFAULT_EST_CPU  # cores one agent is expected to keep busy
    max_live: int | None = None  # at most this many of this agent live at once
    rate_limit: tuple[str, ...] = ()  # log patterns that mean "rate limited, not failed"
    cooldown: float = 30.0  # first cooldown after a rate limit; doubles, up to cooldown_max
    cooldown_max: float = 1800.0
    prompt_via: str = "argv"  # "argv" ({prompt} in the command), "stdin" or "file"


@dataclass(frozen=True, slots=True)
class Hook:
    """A command run with an event's JSON on stdin (never on its command line)."""

    on: tuple[str, ...]
    command: tuple[str, ...]
    timeout: float = 30.0
    debounce: float = 0.0  # > 0: one summary event for everything that came in that long


CAP_MODES = ("fixed", "suggest", "auto")
PRESSURE_MODES = ("off", "pause_newest")


@dataclass(frozen=True, slots=True)
class Config:
    cap: int = 3
    cap_mode: str = "fixed"
    cap_min: int = 1
    cap_max: int = 16
    memory_reserve: float = 2.0 * 2**30
    memory_pressure: str = "off"
    max_attempts: int = 3
    retry_backoff: float = 10.0
    expire_after: float = 86400.0
    kill_grace: float = 10.0
    max_log: float = 50.0 * 2**20
    on_interrupt: str = "requeue"
    worktree_setup: tuple[str, ...] = ()
    worktree_base: str | None = None
    worktree_commit: bool = True  # commit a successful attempt's changes on the task's branch
    repo_max_live: Mapping[str, int] = field(default_factory=dict)
    hooks: tuple[Hook, ...] = ()
    default_agent: str = "opencode"
    agents: Mapping[str, AgentConfig] = field(
        default_factory=lambda: {n: AgentConfig(n, c) for n, c in BUILTIN_AGENTS.items()}
    )
    path: Path | None = None

    @property
    def agent_max_live(self) -> dict[str, int]:
        """Agents with a limit of their own: name -> max_live."""
        return {a.name: a.max_live for a in self.agents.values() if a.max_live}

    def agent(self, name: str) -> AgentConfig:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents))
            raise ConfigError(f"unknown agent {name!r} (expected one of: {known})") from None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
SIZE_HINT = 'a size like "512MiB" or "2GiB"'


def parse_size(text: str) -> float:
    """'2GiB' -> 2147483648.0, '512MB' -> 512e6; a bare number is bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


# --- validation -------------------------------------------------------------------


class _Reader:
    """Walks the parsed TOML, converting each known key and rejecting unknown ones."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, got: object) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: expected {expected}, got {got!r}")

    def table(self, data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                names = ", ".join(sorted(allowed))
                place = f"{where} {key}" if where else key
                raise ConfigError(f"{self.path}: unknown key {place} (expected one of: {names})")

    def get(
        self,
        data: Mapping[str, Any],
        where: str,
        key: str,
        convert: Callable[[Any], Any],
        expected: str,
        default: Any,
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        try:
            return convert(value)
        except (TypeError, ValueError):
            raise self.fail(f"{where} {key}".strip(), expected, value) from None


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(value)
    return value


def _duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_duration(value)
    else:
        raise TypeError(value)
    if not 0 <= seconds < math.inf:  # also refuses nan (TOML has inf and nan literals)
        raise ValueError(value)
    return seconds


def _size(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        size = float(value)
    elif isinstance(value, str):
        size = parse_size(value)
    else:
        raise TypeError(value)
    if not 0 <= size < math.inf:
        raise ValueError(value)
    return size


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(value)
    return float(value)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(value)
        return str(value)

    return convert


def _argv(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise TypeError(value)
    if not value[0].strip():
        raise ValueError(value)
    return tuple(value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(value)
    return tuple(value)


def _argv_or_none(value: Any) -> tuple[str, ...]:
    return () if value == [] else _argv(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(value)
    return value


def config_from_dict(data: Mapping[str, Any], path: Path) -> Config:
    r = _Reader(path)
    r.table(data, "", {"default_agent", "capacity", "queue", "agents", "repos", "worktree", "hooks"})
    for section in ("capacity", "queue", "agents", "repos", "worktree"):
        if section in data and not isinstance(data[section], dict):
            raise r.fail(f"[{section}]", "a table", data[section])
    capacity = data.get("capacity", {})
    queue = data.get("queue", {})
    r.table(capacity, "[capacity]", {"cap", "mode", "min", "max", "memory_reserve", "memory_pressure"})
    r.table(
        queue,
        "[queue]",
        {"max_attempts", "retry_backoff", "expire_after", "kill_grace", "max_log", "on_interrupt"},
    )
    d = Config()
    agents = dict(d.agents)
    for name, spec in data.get("agents", {}).items():
        where = f"[agents.{name}]"
        if not isinstance(spec, dict):
            raise r.fail(where, "a table with command = [...]", spec)
        r.table(
            spec,
            where,
            {
                "command",
                "est_rss",
                "est_cpu",
                "max_live",
                "rate_limit",
                "cooldown",
                "cooldown_max",
                "prompt_via",
            },
        )
        base = agents.get(name)
        if "command" not in spec and base is None:
            raise ConfigError(f"{path}: {where} command: missing (expected a list of strings)")
        argv = r.get(
            spec,
            where,
            "command",
            _argv,
            'a non-empty list of strings like ["opencode", "run", "{prompt}"]',
            base.command if base else None,
        )
        agents[name] = AgentConfig(
            name,
            argv,
            est_rss=r.get(spec, where, "est_rss", _size, SIZE_HINT, DEFAULT_EST_RSS),
            est_cpu=r.get(
                spec, where, "est_cpu", _positive_float, "a number of cores > 0 like 1.0", DEFAULT_EST_CPU
            ),
            max_live=r.get(spec, where, "max_live", _positive_int, "a whole number >= 1", None),
            rate_limit=r.get(spec, where, "rate_limit", _strings, 'a list of strings like ["429"]', ()),
            cooldown=r.get(spec, where, "cooldown", _duration, DURATION_HINT, 30.0),
            cooldown_max=r.get(spec, where, "cooldown_max", _duration, DURATION_HINT, 1800.0),
            prompt_via=r.get(
                spec,
                where,
                "prompt_via",
                _one_of("argv", "stdin", "file"),
                '"argv", "stdin" or "file"',
                "argv",
            ),
        )
    repo_max_live: dict[str, int] = {}
    for repo, spec in data.get("repos", {}).items():
        where = f'[repos."{repo}"]'
        if not isinstance(spec, dict):
            raise r.fail(where, "a table with max_live = N", spec)
        r.table(spec, where, {"max_live"})
        limit = r.get(spec, where, "max_live", _positive_int, "a whole number >= 1", None)
        if limit is not None:
            repo_max_live[str(Path(repo).expanduser().resolve())] = limit
    worktree = data.get("worktree", {})
    r.table(worktree, "[worktree]", {"setup", "base", "commit"})
    hooks = []
    raw_hooks = data.get("hooks", [])
    if not isinstance(raw_hooks, list):
        raise r.fail("[[hooks]]", "an array of tables ([[hooks]])", raw_hooks)
    for n, spec in enumerate(raw_hooks, 1):
        where = f"[[hooks]] #{n}"
        if not isinstance(spec, dict):
            raise r.fail(where, "a table", spec)
        r.table(spec, where, {"on", "command", "timeout", "debounce"})
        for key in ("on", "command"):
            if key not in spec:
                raise ConfigError(f"{path}: {where} {key}: missing (expected a list of strings)")
        on = r.get(spec, where, "on", _strings, 'a list of event names like ["task_error"]', ())
        unknown = [name for name in on if name not in EVENT_NAMES]
        if unknown:
            raise ConfigError(
                f"{path}: {where} on: unknown event {unknown[0]!r} "
                f"(expected one of: {', '.join(sorted(EVENT_NAMES))})"
            )
        hooks.append(
            Hook(
                on=on,
                command=r.get(spec, where, "command", _argv, "a non-empty list of strings", ()),
                timeout=r.get(spec, where, "timeout", _duration, DURATION_HINT, 30.0),
                debounce=r.get(spec, where, "debounce", _duration, DURATION_HINT, 0.0),
            )
        )
    default_agent = r.get(data, "", "default_agent", _name, "an agent name", d.default_agent)
    if default_agent not in agents:
        known = ", ".join(sorted(agents))
        raise ConfigError(
            f"{path}: default_agent: unknown agent {default_agent!r} (expected one of: {known})"
        )
    whole = "a whole number >= 1"
    c, q = "[capacity]", "[queue]"
    config = Config(
        cap=r.get(capacity, c, "cap", _positive_int, whole, d.cap),
        cap_mode=r.get(capacity, c, "mode", _one_of(*CAP_MODES), '"fixed", "suggest" or "auto"', d.cap_mode),
        cap_min=r.get(capacity, c, "min", _positive_int, whole, d.cap_min),
        cap_max=r.get(capacity, c, "max", _positive_int, whole, d.cap_max),
        memory_reserve=r.get(capacity, c, "memory_reserve", _size, SIZE_HINT, d.memory_reserve),
        memory_pressure=r.get(
            capacity,
            c,
            "memory_pressure",
            _one_of(*PRESSURE_MODES),
            '"off" or "pause_newest"',
            d.memory_pressure,
        ),
        max_attempts=r.get(queue, q, "max_attempts", _positive_int, whole, d.max_attempts),
        retry_backoff=r.get(queue, q, "retry_backoff", _duration, DURATION_HINT, d.retry_backoff),
        expire_after=r.get(queue, q, "expire_after", _duration, DURATION_HINT, d.expire_after),
        kill_grace=r.get(queue, q, "kill_grace", _duration, DURATION_HINT, d.kill_grace),
        max_log=r.get(queue, q, "max_log", _size, SIZE_HINT, d.max_log),
        on_interrupt=r.get(
            queue, q, "on_interrupt", _one_of("requeue", "fail"), '"requeue" or "fail"', d.on_interrupt
        ),
        worktree_setup=r.get(
            worktree, "[worktree]", "setup", _argv_or_none, 'a list of strings like ["npm", "ci"]', ()
        ),
        worktree_base=r.get(worktree, "[worktree]", "base", _name, 'a branch name like "main"', None),
        worktree_commit=r.get(worktree, "[worktree]", "commit", _bool, "true or false", d.worktree_commit),
        repo_max_live=repo_max_live,
        hooks=tuple(hooks),
        default_agent=default_agent,
        agents=agents,
        path=path,
    )
    if config.cap_min > config.cap_max:
        raise ConfigError(
            f"{path}: [capacity] min: expected at most max ({config.cap_max}), got {config.cap_min}"
        )
    return config


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
