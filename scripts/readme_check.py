"""Run README.md's set-up and its "Use" examples as written, the way a newcomer would: in a
fresh copy of this checkout (the files git tracks or would track, never a .venv), with a
venv of its own, against a throwaway home. Exit 0 when every line worked, 1 otherwise.

    python scripts/readme_check.py [--keep]

The set-up block under "## Try it" runs line by line in one shell (so activating the venv
holds for what follows), except that `kugetsu demo` runs headless at ten times speed: the
dashboard needs a terminal. Then each line of every block under "## Use" (in a transcript,
the lines after `$ `) runs in that shell's environment and must exit 0, with these
allowances: `kugetsu run --headless` may
exit 1 (its tasks failed: a built-in agent that is not installed here is a stand-in that
fails, on the PATH of every line but those that run that program, so that `kugetsu add`
accepts it), and a line that serves or
follows forever (`--forever`, `-f`, `kugetsu web`) is given a few seconds and then
interrupted (a server meant for every interface listens on loopback only here), and a
line of another program (an agent's CLI) runs only where that program is installed. Any
traceback fails the line.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_FOR = 4  # seconds a line that never ends is given before it is interrupted
LINE_TIMEOUT = 240  # seconds any other line may take
STAND_IN_FOR = ("opencode", "claude", "codex", "aider")  # the built-in agents' programs


def sh_blocks(readme: str) -> dict[str, list[list[str]]]:
    """The ```sh blocks of each "## " section, as lists of non-empty lines."""
    found: dict[str, list[list[str]]] = {}
    section = ""
    block: list[str] | None = None
    for line in readme.splitlines():
        if block is not None:
            if line.startswith("```"):
                found.setdefault(section, []).append([x for x in block if x.strip()])
                block = None
            else:
                block.append(line)
        elif line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() == "```sh":
            block = []
    return found


def commands(block: list[str]) -> list[str]:
    """The lines to run: all of them, or in a transcript only those after `$ `."""
    typed = [line[2:] for line in block if line.startswith("$ ")]
    return typed or block


def command_of(line: str) -> str:
    """The line without its trailing comment (two spaces or more, then #)."""
    return re.split(r"\s{2,}#", line, maxsplit=1)[0].strip()


def fresh_copy(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    if listed.returncode == 0:
        names = list(filter(None, listed.stdout.decode().split("\0")))
    else:  # not a git checkout (CI's copy of one): every file but venvs and caches
        skip = {".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
        names = [
            str(path.relative_to(ROOT))
            for path in ROOT.rglob("*")
            if path.is_file() and not skip.intersection(path.relative_to(ROOT).parts)
        ]
    for name in names:
        src = ROOT / name
        if src.is_file() and not name.startswith(".venv/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def script_for(setup: list[str], use: list[str]) -> str:
    """One bash script: the set-up in the shell itself, each "Use" line checked."""
    out = [
        "set -u",
        'fail() { echo "readme_check: FAILED: $1" >&2; exit 1; }',
        "check() {  # the line, the exit codes it may end with, seconds it is given, stand-ins?",
        '  echo "\\$ $1"',
        '  path=$PATH; [ "${4:-}" = stand-ins ] && path=$PATH:$STAND_INS',
        '  PATH=$path timeout -s INT "$3" bash -c "$1" >"$OUT" 2>"$ERR"; rc=$?',
        '  head -c 2000 "$OUT"; head -c 2000 "$ERR" >&2',
        '  if grep -q "Traceback" "$ERR"; then fail "$1 (printed a traceback)"; fi',
        '  case " $2 " in *" $rc "*) ;; *) fail "$1 (exit $rc, expected one of: $2)";; esac',
        "}",
    ]
    for line in setup:
        command = command_of(line)
        if command.endswith("kugetsu demo"):  # the dashboard needs a person: the tour, headless
            command = (
                command.removesuffix("kugetsu demo")
                + "KUGETSU_DEMO_SPEED=0.1 kugetsu demo --headless >/dev/null"
            )
        out.append(f'echo "\\$ "{shlex.quote(command)}')
        out.append(f"{command} || fail {shlex.quote(command)}")
    for line in use:
        command = command_of(line)
        if not command:
            continue  # a comment going on from the line before
        # The check listens on loopback only, like the tests: a line serving on every
        # interface serves on 127.0.0.1 here.
        command = command.replace("--host 0.0.0.0", "--host 127.0.0.1")
        words = command.split()
        if "--forever" in words or "-f" in words or words[:2] == ["kugetsu", "web"]:
            codes, seconds = "0 124", RUN_FOR
        elif words[:3] == ["kugetsu", "run", "--headless"]:
            codes, seconds = "0 1", LINE_TIMEOUT
        else:
            codes, seconds = "0", LINE_TIMEOUT
        program = words[0]
        extra = "plain" if program in STAND_IN_FOR else "stand-ins"
        checked = f"check {shlex.quote(command)} {shlex.quote(codes)} {seconds} {extra}"
        if program != "kugetsu":
            # Another program's command (e.g. registering kugetsu with an agent's CLI):
            # run as written where that program is installed.
            skipped = shlex.quote(f"(skipped: {program} is not installed here) {command}")
            checked = (
                f"if command -v {shlex.quote(program)} >/dev/null; then {checked}; else echo {skipped}; fi"
            )
        out.append(checked)
    out.append('echo "readme_check: every line worked"')
    return "\n".join(out) + "\n"


def stand_ins(folder: Path, path: str | None) -> Path:
    """For each built-in agent whose CLI is not installed here, a stand-in that fails: the
    lines see them after PATH (so `kugetsu add` accepts a task for it, and `kugetsu run
    --headless` fails those tasks, exit 1), except the lines that run those programs."""
    folder.mkdir()
    for name in STAND_IN_FOR:
        if shutil.which(name, path=path) is None:
            stand_in = folder / name
            stand_in.write_text(f"#!/bin/sh\necho '{name} is not installed here' >&2\nexit 1\n")
            stand_in.chmod(0o755)
    return folder


def main(argv: list[str]) -> int:
    blocks = sh_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    try:
        setup = blocks["Try it"][0]
        use = [line for block in blocks["Use"] for line in commands(block)]
    except (KeyError, IndexError):
        print("readme_check: README.md has no ```sh block under '## Try it' or '## Use'", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="kugetsu-readme-"))
    try:
        clone = work / "kugetsu-tui"
        fresh_copy(clone)
        user = work / "user"
        user.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUGETSU_", "VIRTUAL_ENV"))}
        env |= {
            "HOME": str(user),  # a throwaway home: nothing of the person running this is touched
            "KUGETSU_HOME": str(work / "kugetsu-home"),
            "XDG_STATE_HOME": str(user / ".local" / "state"),
            "OUT": str(work / "out"),
            "ERR": str(work / "err"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        env["STAND_INS"] = str(stand_ins(work / "stand-ins", env.get("PATH")))
        for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
            env.setdefault(key, "readme check")
        for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
            env.setdefault(key, "readme-check@localhost")
        # Like a clone: a git repository, so `kugetsu add` finds the repo it is in.
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
            subprocess.run(["git", *args], cwd=clone, env=env, check=True, capture_output=True)
        done = subprocess.run(["bash", "-c", script_for(setup, use)], cwd=clone, env=env, check=False)
        return 0 if done.returncode == 0 else 1
    finally:
        if "--keep" in argv:
            print(f"readme_check: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
