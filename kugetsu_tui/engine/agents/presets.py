"""The built-in agents: for each, the argv that runs it non-interactively, allowed to edit
inside the worktree (never beyond it) and printing machine-readable output; the argv that
continues one of its sessions instead; the output format its log is read with; what counts
as a rate limit or a fatal error; how to install it. Also how an agent's environment may be
shown (masked). Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OUTPUTS = ("text", "claude-stream-json", "codex-json", "opencode-json")

# Said by the CLIs (or the APIs behind them) when a request was refused for its rate or
# because the service is overloaded: a wait, not a failure of the task.
RATE_LIMIT_PATTERNS: tuple[str, ...] = (
    r"\b429\b",
    r"\b529\b",
    r"rate[ _-]?limit",
    r"too many requests",
    r"overloaded",
    r"usage limit",
)
# Said when no attempt can succeed until a person fixes something: retrying burns attempts.
FATAL_PATTERNS: tuple[str, ...] = (
    r"not logged in",
    r"please run /login",
    r"invalid api key",
    r"incorrect api key",
    r"invalid x-api-key",
    r"authentication_(?:error|failed)",
    r"\b401\b[^\n]*unauthori[sz]ed",
    r"agent command '[^']*' not found on PATH",
)


@dataclass(frozen=True, slots=True)
class Preset:
    command: tuple[str, ...]
    output: str = "text"
    rate_limit: tuple[str, ...] = RATE_LIMIT_PATTERNS
    fatal: tuple[str, ...] = FATAL_PATTERNS
    install: str = ""  # how to get the command, for a message when it is missing
    # The same agent continuing session {session} with {prompt} as the new message; a
    # config's `args` go where the {args} element stands. Empty: it cannot be resumed.
    resume: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "opencode": Preset(
        ("opencode", "run", "--format", "json", "{prompt}"),
        "opencode-json",
        install="npm install -g opencode-ai",
        resume=("opencode", "run", "--session", "{session}", "--format", "json", "{args}", "{prompt}"),
    ),
    "claude": Preset(
        (
            "claude",
            "-p",
            "--permission-mode",
            "acceptEdits",
            "--output-format",
            "stream-json",
            "--verbose",
            "{prompt}",
        ),
        "claude-stream-json",
        install="npm install -g @anthropic-ai/claude-code",
        resume=(
            "claude",
            "-p",
            "--resume",
            "{session}",
            "--permission-mode",
            "acceptEdits",
            "--output-format",
            "stream-json",
            "--verbose",
            "{args}",
            "{prompt}",
        ),
    ),
    "codex": Preset(
        ("codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", "{prompt}"),
        "codex-json",
        install="npm install -g @openai/codex",
        # exec's options (and a config's args) before its `resume` subcommand: they are exec's.
        resume=(
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "--skip-git-repo-check",
            "{args}",
            "resume",
            "{session}",
            "{prompt}",
        ),
    ),
    "aider": Preset(("aider", "--yes", "--message", "{prompt}"), install="pip install aider-chat"),
}

MASK = "••••"


def masked(env: Mapping[str, str]) -> dict[str, str]:
    """Environment variables as they may be shown: names only, every value masked."""
    return dict.fromkeys(env, MASK)
