"""A stand-in coding agent for the tests: a real process that does what its prompt says.

The supervisor gives it the task's prompt as one argv element. The prompt is a small
script: steps separated by a lone ";", each a mode and its arguments (shell-like
quoting, read with shlex). For example::

    record /tmp/t/starts ; fail-then-ok 2 /tmp/t/counter ; sleep 0.3

Modes:

    ok                      exit 0 now
    exit K                  exit with code K now
    sleep S | hang S        sleep S seconds (then go on with the next step)
    fail-then-ok N FILE     count this run in FILE; exit 1 for the first N runs
    ignore-term             ignore SIGTERM from now on
    spawn-children N S      start N children, each with a grandchild, all sleeping S seconds
    grandchild S            start one child sleeping S seconds
    escape S                start one child sleeping S seconds in a session of its own (setsid)
    escape-stubborn S FILE  the same, but the child ignores SIGTERM, then records to FILE
    print-lines N           print N numbered lines to stdout (and one to stderr)
    flood MIB               write MIB mebibytes to stdout; stop quietly at the first failed write
    say TEXT...             print TEXT to stdout
    record FILE             append one JSON line (task id, attempt, pid, cwd, time) to FILE
    wait-file PATH          wait until PATH exists
    check NAME FILE         append "yes" or "no" to FILE: does NAME exist in the working directory
    write NAME TEXT         write TEXT to NAME in the working directory
    git-commit MESSAGE      commit everything in the working directory
    ask                     ask "Proceed? [y/N] " on the terminal, read a line; print the
                            answer, exit 0 if it is y, 1 otherwise
    ask-times N             ask "Proceed? [y/N] " N times, printing each answer; exit 0
                            if the last is y, 1 otherwise
    run-hook FILE COMMAND   run COMMAND with sh -c, FILE on its stdin, as an agent's hook
                            runs; append its exit code (and stderr) to FILE.exit, quietly
    notify HOME TEXT        run the real `kugetsu --home HOME notify TEXT` from inside the agent
    dump-argv FILE          write this process's argv (after the script name) as JSON
    add-task HOME FILE PROMPT  run the real `kugetsu --home HOME add` with this agent's
                            environment (a task added from inside a task) for PROMPT, no
                            worktree, in the working directory; append what it printed (the
                            new id) to FILE (agents are not told where the home is)

With more than one argument, the arguments are taken as the script's words directly
(`fake_agent.py dump-argv FILE ...` keeps the rest of argv intact for dump-argv).

`fake_agent.py as-cli ARGS...` stands in for an agent's own CLI (a `claude` on PATH that
execs it): it appends {"argv": ARGS, "cwd": ...} as a JSON line to $FAKE_CLI_LOG, then runs
the script for this run from $FAKE_CLI_PLAN, a JSON list of scripts, one per run (the
number of lines in the log; the last script repeats), whatever its options and prompt.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time


def record(path: str) -> None:
    line = json.dumps(
        {
            "task": os.environ.get("KUGETSU_TASK_ID"),
            "attempt": os.environ.get("KUGETSU_ATTEMPT"),
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "t": time.time(),
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


def count_run(path: str) -> int:
    """Add one to the counter in path and return the new value."""
    try:
        with open(path) as f:
            n = int(f.read().strip() or 0)
    except FileNotFoundError:
        n = 0
    n += 1
    with open(path, "w") as f:
        f.write(str(n))
    return n


def spawn(script: str, new_session: bool = False) -> None:
    """Start another fake agent running script; it stays in our process group.

    FAKE_AGENT_CHILD tells the tests it is not an agent the supervisor started."""
    env = {**os.environ, "FAKE_AGENT_CHILD": "1"}
    subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), script], env=env, start_new_session=new_session
    )


def run(words: list[str]) -> int:
    steps: list[list[str]] = [[]]
    for word in words:
        if word == ";":
            steps.append([])
        else:
            steps[-1].append(word)
    for step in steps:
        if not step:
            continue
        mode, args = step[0], step[1:]
        if mode == "ok":
            return 0
        if mode == "exit":
            return int(args[0])
        if mode in ("sleep", "hang"):
            time.sleep(float(args[0]))
        elif mode == "fail-then-ok":
            if count_run(args[1]) <= int(args[0]):
                print(f"fake-agent: failing on purpose (run {args[1]})", file=sys.stderr, flush=True)
                return 1
        elif mode == "ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif mode == "spawn-children":
            for _ in range(int(args[0])):
                spawn(f"grandchild {args[1]} ; sleep {args[1]}")
        elif mode == "grandchild":
            spawn(f"sleep {args[0]}")
        elif mode == "escape":
            spawn(f"sleep {args[0]}", new_session=True)
        elif mode == "escape-stubborn":
            spawn(f"ignore-term ; record {shlex.quote(args[1])} ; sleep {args[0]}", new_session=True)
        elif mode == "print-lines":
            out = sys.stdout
            for i in range(int(args[0])):
                out.write(f"line {i}\n")
            out.flush()
            print("fake-agent: to stderr", file=sys.stderr, flush=True)
        elif mode == "flood":
            chunk = b"x" * 65535 + b"\n"
            try:
                for _ in range(int(float(args[0]) * 16)):
                    os.write(1, chunk)
            except OSError:
                pass  # the disk is full: go on as an agent that ignores its output's fate
        elif mode == "say":
            print(" ".join(args), flush=True)
        elif mode == "record":
            record(args[0])
        elif mode == "wait-file":
            while not os.path.exists(args[0]):
                time.sleep(0.02)
        elif mode == "check":
            with open(args[1], "a") as out:
                out.write(("yes" if os.path.exists(args[0]) else "no") + "\n")
        elif mode == "write":
            with open(args[0], "w") as f:
                f.write(args[1] if len(args) > 1 else "")
        elif mode == "git-commit":
            ident = ["-c", "user.name=fake", "-c", "user.email=fake@localhost"]
            subprocess.run(["git", "add", "-A"], check=True, capture_output=True)
            subprocess.run(["git", *ident, "commit", "-q", "-m", args[0]], check=True, capture_output=True)
        elif mode == "add-task":
            added = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kugetsu_tui",
                    "--home",
                    args[0],
                    "add",
                    "--no-worktree",
                    "--repo",
                    os.getcwd(),
                    "--",
                    args[2],
                ],
                capture_output=True,
                text=True,
            )
            with open(args[1], "a") as out:
                out.write(added.stdout or f"error {added.returncode}: {added.stderr}")
        elif mode == "ask":
            sys.stdout.write("Proceed? [y/N] ")
            sys.stdout.flush()
            answer = sys.stdin.readline().strip()
            print(f"fake-agent: answered {answer!r}", flush=True)
            return 0 if answer == "y" else 1
        elif mode == "ask-times":
            answer = ""
            for _ in range(int(args[0])):
                sys.stdout.write("Proceed? [y/N] ")
                sys.stdout.flush()
                answer = sys.stdin.readline().strip()
                print(f"fake-agent: answered {answer!r}", flush=True)
            return 0 if answer == "y" else 1
        elif mode == "run-hook":
            with open(args[0], "rb") as stdin:
                ran = subprocess.run(["sh", "-c", args[1]], stdin=stdin, capture_output=True, text=True)
            with open(args[0] + ".exit", "a") as out:
                out.write(f"{ran.returncode} {ran.stdout!r} {ran.stderr!r}\n")
        elif mode == "notify":
            cli = [sys.executable, "-m", "kugetsu_tui", "--home", args[0], "notify", args[1]]
            subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
        elif mode == "dump-argv":
            with open(args[0], "w", encoding="utf-8") as f:
                json.dump(sys.argv[1:], f)
            return 0
        else:
            print(f"fake-agent: unknown mode {mode!r}", file=sys.stderr)
            return 99
    return 0


def as_cli(argv: list[str]) -> int:
    line = json.dumps({"argv": argv, "cwd": os.getcwd(), "attempt": os.environ.get("KUGETSU_ATTEMPT")})
    log = os.environ["FAKE_CLI_LOG"]
    with open(log, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    with open(log, encoding="utf-8") as f:
        runs = sum(1 for _ in f)
    with open(os.environ["FAKE_CLI_PLAN"], encoding="utf-8") as f:
        plan = json.load(f)
    return run(shlex.split(plan[min(runs, len(plan)) - 1]))


def main(argv: list[str]) -> int:
    if argv and argv[0] == "as-cli":
        return as_cli(argv[1:])
    if len(argv) == 1:
        return run(shlex.split(argv[0]))
    return run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
