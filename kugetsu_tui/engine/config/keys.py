"""Every key of config.toml, declared once: its kind, default, bounds and doc.

Validation (the package's __init__), the dataclasses' defaults and the example file
(example.py) are all made from these tables; a new key is one line here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kugetsu_tui.engine.agents import PRESETS
from kugetsu_tui.engine.config.kinds import (
    ATTEMPTS,
    CAP,
    TOKENS,
    Argv,
    Choice,
    Dollars,
    Duration,
    Flag,
    Invalid,
    Kind,
    Name,
    OneOf,
    Size,
    Whole,
)
from kugetsu_tui.engine.model import CapMode, EventType, MemoryPressure, OnInterrupt

PLACEHOLDERS = ("{prompt}", "{task_id}", "{worktree}")

# Agents kugetsu knows without any config (engine/agents/presets.py has their presets).
# `{prompt}` is one whole argv element.
BUILTIN_AGENTS: dict[str, tuple[str, ...]] = {name: p.command for name, p in PRESETS.items()}
CAP_MODES = tuple(str(mode) for mode in CapMode)
PRESSURE_MODES = tuple(str(mode) for mode in MemoryPressure)
EXECUTOR_KINDS = ("local", "ray")
ON_FULL = ("queue", "reject")
MERGE_STRATEGIES = ("merge", "squash", "rebase")  # merge.Strategy's values
QUEUED_MAX = Whole(1, 10**9)
EVENT_NAMES = frozenset(str(e) for e in EventType)


@dataclass(frozen=True, slots=True)
class Env:
    """A table of environment variables: names as a shell takes them, string values."""

    expected: str = 'a table of strings like {ANTHROPIC_BASE_URL = "http://127.0.0.1:8080"}'
    limits = ""

    def __call__(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise TypeError(value)
        for name, text in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not isinstance(text, str) or "\0" in text:
                raise TypeError(value)
        return dict(value)


@dataclass(frozen=True, slots=True)
class Patterns:
    """A list of regular expressions (searched case-insensitively)."""

    expected: str = 'a list of regular expressions like ["429", "rate.?limit"]'
    limits = ""

    def __call__(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise TypeError(value)
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as err:
                raise Invalid(f"{pattern!r} is not a regular expression ({err})") from None
        return tuple(value)


# --- the keys ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # as written in the file
    kind: Kind
    default: Any  # None: unset unless the file sets it
    doc: str  # one sentence or two; the example file wraps it
    attr: str = ""  # the dataclass field, when it is not `name`
    required: bool = False
    example: Any = None  # shown commented out in the example file when there is no default

    @property
    def field(self) -> str:
        return self.attr or self.name


@dataclass(frozen=True, slots=True)
class Table:
    header: str  # "[capacity]", "[agents.NAME]" …; "" for the top level
    keys: tuple[Key, ...]
    doc: str = ""
    shape: str = "a table"  # what a value of the wrong type was expected to be

    def defaults(self) -> dict[str, Any]:
        return {k.field: k.default for k in self.keys}


TOP = Table(
    "",
    (
        Key(
            "default_agent",
            Name("an agent name"),
            "opencode",
            "The agent `kugetsu add` uses when no --agent is given.",
        ),
    ),
)
CAPACITY = Table(
    "[capacity]",
    (
        Key(
            "cap", CAP, 3, "How many agents may be live (starting + running + paused) at once, machine-wide."
        ),
        Key(
            "mode",
            OneOf(CapMode),
            CapMode.FIXED,
            '"fixed": use cap. "suggest": show the advisor\'s suggestion (kugetsu cap --accept, or the '
            'dashboard\'s `a` key, takes it). "auto": the advisor sets the cap, with a cap_changed event.',
            attr="cap_mode",
        ),
        Key("min", CAP, 1, "The lowest cap the advisor suggests.", attr="cap_min"),
        Key("max", CAP, 16, "The highest cap the advisor suggests.", attr="cap_max"),
        Key(
            "memory_reserve",
            Size(),
            2.0 * 2**30,
            "While available memory is below this, nothing new is admitted, whatever the cap.",
        ),
        Key(
            "memory_pressure",
            OneOf(MemoryPressure),
            MemoryPressure.OFF,
            '"pause_newest": under half the reserve, pause the newest agent; resume it once memory is '
            'back above the reserve. "off": never pause for memory.',
        ),
    ),
)
QUEUE = Table(
    "[queue]",
    (
        Key(
            "max_attempts",
            ATTEMPTS,
            3,
            "Attempts per task before it is marked failed (a cancel is never retried); "
            "`kugetsu add --max-attempts` sets it for one task.",
        ),
        Key(
            "retry_backoff",
            Duration(),
            10.0,
            "Wait before a retry; doubles with each failed attempt (10s, 20s, 40s ..., at most 1h).",
        ),
        Key(
            "expire_after",
            Duration(),
            86400.0,
            "A task still queued after this long becomes `expired` (held tasks never expire).",
        ),
        Key(
            "kill_grace",
            Duration(),
            10.0,
            "After SIGTERM, how long an agent has to exit before its whole process group gets SIGKILL.",
        ),
        Key(
            "max_log",
            Size(),
            50.0 * 2**20,
            "A task's log keeps at most this much; past it, the oldest output is cut (the tail stays).",
        ),
        Key(
            "timeout",
            Duration(above_zero=True),
            None,
            "An attempt running longer than this is ended (and retried while attempts remain); "
            "`[agents.NAME] timeout` and `kugetsu add --timeout` set it per agent and per task. "
            "Unset: no limit.",
            attr="default_timeout",
            example=7200.0,
        ),
        Key(
            "on_interrupt",
            OneOf(OnInterrupt),
            OnInterrupt.REQUEUE,
            'An agent that vanished without an exit status (the machine rebooted): "requeue" it as a '
            'new attempt, or "fail" it.',
        ),
        Key(
            "max_queued",
            QUEUED_MAX,
            None,
            "At most this many tasks queued at once, for every face: beyond it `kugetsu add` exits 3 "
            "and an MCP add_task fails with queue-full, adding nothing. Unset: no bound.",
            example=1000,
        ),
    ),
)
MCP = Table(
    "[mcp]",
    (
        Key(
            "on_full",
            Choice(ON_FULL),
            "queue",
            '`kugetsu mcp`\'s add_task when every slot is taken: "queue" it (and say where), or '
            '"reject" it with the error max-live-workers, queuing nothing.',
            attr="mcp_on_full",
        ),
    ),
)
WORKTREE = Table(
    "[worktree]",
    (
        Key(
            "setup",
            Argv('a list of strings like ["npm", "ci"]', empty=True),
            (),
            "A command (argv) run in each fresh worktree before the agent; its failure fails the attempt "
            "with a clear reason. Empty: none.",
            attr="worktree_setup",
        ),
        Key(
            "base",
            Name('a branch name like "main"'),
            None,
            "The branch or commit a worktree starts from (`kugetsu add --base` per task). Unset: HEAD.",
            attr="worktree_base",
            example="main",
        ),
        Key(
            "commit",
            Flag(),
            True,
            "Commit a successful attempt's changes on the task's branch (kugetsu/<id>), the prompt's "
            "first line as the message; a task that changed nothing loses its branch.",
            attr="worktree_commit",
        ),
    ),
)
REVIEW = Table(
    "[review]",
    (
        Key(
            "strategy",
            Choice(MERGE_STRATEGIES),
            "merge",
            '`kugetsu merge` without --strategy: "merge" (a merge commit), "squash" (one commit) or '
            '"rebase" (the task\'s commits replayed on the target).',
            attr="review_strategy",
        ),
    ),
)
EXECUTOR = Table(
    "[executor]",
    (
        Key(
            "kind",
            Choice(EXECUTOR_KINDS),
            "local",
            '"local": agents run on this machine. "ray": each attempt runs on a node of a Ray cluster '
            "(pip install 'kugetsu-tui[ray]'); the queue and the cap stay here.",
            attr="executor_kind",
        ),
        Key(
            "address",
            Name('a Ray address like "HEAD:6379", or "auto"'),
            "auto",
            'The Ray cluster for kind = "ray": the head\'s HOST:PORT, or "auto" (the cluster this '
            "machine belongs to).",
            attr="executor_address",
        ),
    ),
)
WEB = Table(
    "[web]",
    (
        Key(
            "token_file",
            Name("a file path"),
            None,
            "`kugetsu web`: the file holding the access token (its first line). Unset: a random token "
            "is made at each start. Needed to listen on anything but 127.0.0.1.",
            attr="web_token_file",
            example="~/.config/kugetsu/web-token",
        ),
        Key(
            "max_sessions",
            Whole(1, 64),
            4,
            "`kugetsu web`: at most this many browser sessions at once (each runs a dashboard process).",
            attr="web_max_sessions",
        ),
    ),
)
BUDGET = Table(
    "[budget]",
    (
        Key(
            "cost_usd",
            Dollars(),
            None,
            "Stop admitting new tasks once the cost the agents reported (claude's total_cost_usd, "
            "opencode's cost) adds up to this; agents already running go on. Raise it to resume. "
            "Unset: no budget in dollars.",
            attr="budget_cost_usd",
            example=20.0,
        ),
        Key(
            "tokens",
            TOKENS,
            None,
            "The same for the tokens the agents reported (input, cache included, plus output). "
            "An agent that reports no usage is unmetered: it runs, and `status` counts it apart. "
            "Unset: no budget in tokens.",
            attr="budget_tokens",
            example=5000000,
        ),
    ),
)
REPO = Table(
    '[repos."PATH"]',
    (Key("max_live", CAP, None, "Live tasks of this repo at once.", example=1),),
    "At most this many live tasks in one repo (inside the global cap), by path.",
    "a table with max_live = N",
)
SECTIONS = {
    "capacity": CAPACITY,
    "queue": QUEUE,
    "worktree": WORKTREE,
    "review": REVIEW,
    "executor": EXECUTOR,
    "mcp": MCP,
    "web": WEB,
    "budget": BUDGET,
}
TABLES = frozenset({*SECTIONS, "agents", "repos", "hooks"})
TOP_KEYS = frozenset({*(k.name for k in TOP.keys), *TABLES})
