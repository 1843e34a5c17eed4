"""A simulated coding agent for `kugetsu demo`: prints progress, sleeps, sometimes fails.

Its behaviour follows words in the prompt, so the demo is the same every time:
"flaky" fails on the first attempt, "broken" always fails, "heavy" holds some memory,
"slow" takes longer. KUGETSU_DEMO_SPEED (default 1.0) scales every pause.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

STEPS = (
    "reading the code",
    "planning the change",
    "editing files",
    "running the tests",
    "writing the summary",
)


def commit_work(prompt: str) -> None:
    """Leave a commit on the task's branch, as a real agent would."""
    with open("CHANGES.md", "a", encoding="utf-8") as out:
        out.write(f"- {prompt}\n")
    ident = ["-c", "user.name=sim-agent", "-c", "user.email=sim-agent@localhost"]
    subprocess.run(["git", "add", "CHANGES.md"], check=False, capture_output=True)
    subprocess.run(["git", *ident, "commit", "-q", "-m", prompt[:60]], check=False, capture_output=True)


def main(argv: list[str]) -> int:
    prompt = " ".join(argv) or "nothing to do"
    attempt = int(os.environ.get("KUGETSU_ATTEMPT", "1"))
    speed = float(os.environ.get("KUGETSU_DEMO_SPEED", "1.0"))
    seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    pause = (0.6 + (seed % 7) / 10) * (3 if "slow" in prompt else 1) * speed
    ballast = bytearray(150 * 2**20) if "heavy" in prompt else b""
    print(f"sim-agent: {prompt!r} (attempt {attempt})", flush=True)
    for n, step in enumerate(STEPS, 1):
        print(f"[{n}/{len(STEPS)}] {step}…", flush=True)
        time.sleep(pause)
        if ("broken" in prompt and n == 4) or ("flaky" in prompt and attempt == 1 and n == 3):
            print("error: 2 tests failed", file=sys.stderr, flush=True)
            return 1
    if os.path.exists(".git"):
        commit_work(prompt)
    print(f"done ({len(ballast) // 2**20} MiB held)" if ballast else "done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
