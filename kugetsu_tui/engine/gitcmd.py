"""How the review modules (review, merge, discard) run git on a person's repository: no
editor, no prompt, no signing key, no hook of theirs, messages in one language, and an
identity of our own only where git knows none. Never raises for git's own failures: the
caller reads the exit code.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

# Commits made here need no editor, no signing key and no hook of the person's repo;
# messages are parsed in one language.
_GIT_ENV = {"GIT_EDITOR": "true", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_GIT_OPTIONS = ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
_FALLBACK_IDENT = ["-c", "user.name=kugetsu", "-c", "user.email=kugetsu@localhost"]


def run(
    args: list[str], cwd: Path | str, *, ident: bool = False, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    options = list(_GIT_OPTIONS)
    if ident and not _has_ident(cwd):
        options += _FALLBACK_IDENT
    return subprocess.run(
        ["git", *options, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **_GIT_ENV, **(env or {})},
        check=False,
    )


def _has_ident(cwd: Path | str) -> bool:
    """Whether git knows who commits here (config or environment)."""
    found = subprocess.run(
        ["git", "var", "GIT_COMMITTER_IDENT"], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL
    )
    return found.returncode == 0


def output(args: list[str], cwd: Path | str) -> str | None:
    """git's stdout, stripped, or None when it failed."""
    done = run(args, cwd)
    return done.stdout.strip() if done.returncode == 0 else None
