"""A simulated coding agent for `kugetsu demo`: prints progress, sleeps, sometimes fails.

Its behaviour follows the word before the colon in the prompt, so the demo is the same
every time: "flaky" fails on the first attempt, "broken" always fails, "rate" hits its
provider's rate limit once (the agent cools down; the attempt is not counted), "endless"
works until it is cancelled, "heavy" holds some memory, "slow" takes longer, "edit"
changes a source file, "ask" (in a terminal) asks before it goes on and fails unless told y. Every attempt that succeeds commits its change on the task's
branch. KUGETSU_DEMO_SPEED (default 1.0) scales every pause.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = (
    "reading the code",
    "planning the change",
    "editing files",
    "running the tests",
    "writing the summary",
)


def commit_work(prompt: str, edit: bool) -> None:
    """Leave a commit on the task's branch, as a real agent would."""
    with open("CHANGES.md", "a", encoding="utf-8") as out:
        out.write(f"- {prompt}\n")
    changed = ["CHANGES.md"]
    if edit and os.path.exists("app.py"):
        source = Path("app.py")
        source.write_text(
            source.read_text(encoding="utf-8").replace("Session", "Connection"), encoding="utf-8"
        )
        changed.append("app.py")
    ident = ["-c", "user.name=sim-agent", "-c", "user.email=sim-agent@localhost"]
    subprocess.run(["git", "add", *changed], check=False, capture_output=True)
    subprocess.run(["git", *ident, "commit", "-q", "-m", prompt[:60]], check=False, capture_output=True)


def rate_limited_before() -> bool:
    """Whether this task already hit the rate limit (a rate-limited attempt is not counted,
    so the attempt number cannot tell); remembered beside the worktree's git metadata,
    which its retries share and which no diff sees."""
    found = subprocess.run(["git", "rev-parse", "--git-dir"], check=False, capture_output=True, text=True)
    if found.returncode != 0:
        return True  # nowhere to remember it: do not loop on rate limits
    marker = Path(found.stdout.strip()) / "sim-rate-limited"
    if marker.exists():
        return True
    marker.touch()
    return False


def told_yes(question: str) -> bool:
    """Ask on the terminal and read the answer (a terminal agent's stdin is its terminal)."""
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    if answer.lower() in ("y", "yes"):
        return True
    print(f"not applied (answer: {answer!r})", flush=True)
    return False


# One branch per kind of task the demo shows: read top to bottom, it is the demo's script.
def main(argv: list[str]) -> int:
    prompt = " ".join(argv) or "nothing to do"
    kind = prompt.split(":", 1)[0] if ":" in prompt else ""
    attempt = int(os.environ.get("KUGETSU_ATTEMPT", "1"))
    speed = float(os.environ.get("KUGETSU_DEMO_SPEED", "1.0"))
    seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    pause = (0.6 + (seed % 7) / 10) * (3 if kind == "slow" else 1) * speed
    ballast = bytearray(150 * 2**20) if kind == "heavy" else b""
    print(f"sim-agent: {prompt!r} (attempt {attempt})", flush=True)
    if kind == "rate" and not rate_limited_before():
        time.sleep(pause)
        print("error: 429 rate limit reached, try again later", file=sys.stderr, flush=True)
        return 1
    if kind == "endless":
        for n in itertools.count(1):
            print(f"[{n}] still refactoring… (the demo cancels this one)", flush=True)
            time.sleep(pause)
    for n, step in enumerate(STEPS, 1):
        print(f"[{n}/{len(STEPS)}] {step}…", flush=True)
        time.sleep(pause)
        if kind == "ask" and n == 2 and not told_yes("Apply the migration to the demo database?"):
            return 1
        if (kind == "broken" and n == 4) or (kind == "flaky" and attempt == 1 and n == 3):
            print("error: 2 tests failed", file=sys.stderr, flush=True)
            return 1
    if os.path.exists(".git"):
        commit_work(prompt, edit=kind == "edit")
    print(f"done ({len(ballast) // 2**20} MiB held)" if ballast else "done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
