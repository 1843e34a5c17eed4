"""Shared helpers for the benchmark scripts: fresh homes, timed commands, the peers.

Every figure is measured on this machine in this run, and every tool gets the same work:
kugetsu-tui through its full persistent path (`kugetsu add` then `kugetsu run --headless`
on a fresh KUGETSU_HOME), and its peers as people would call them (`xargs -P`,
GNU `parallel -j`, task-spooler `tsp -S`). Nothing here asserts a time; the scripts print
figures and write them as JSON for `report.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable


def kugetsu_argv() -> list[str]:
    """The `kugetsu` entry point next to this interpreter, else `python -m kugetsu_tui`."""
    script = Path(PYTHON).parent / "kugetsu"
    if script.exists():
        return [str(script)]
    return [PYTHON, "-m", "kugetsu_tui"]


KUGETSU = kugetsu_argv()


def have(program: str) -> bool:
    return shutil.which(program) is not None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def scratch_root() -> Path:
    """Where homes, repos and task files go: $BENCH_TMPDIR, else beside where a real
    KUGETSU_HOME lives (the XDG state folder), so kugetsu's run folders land on the
    disk they would land on in use."""
    explicit = os.environ.get("BENCH_TMPDIR")
    if explicit:
        root = Path(explicit)
    else:
        state = os.environ.get("XDG_STATE_HOME")
        root = (Path(state) if state else Path.home() / ".local" / "state") / "kugetsu-bench"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def fs_probe(folder: Path, count: int = 300) -> dict[str, float]:
    """Microseconds per mkdir and per file creation in a new subfolder of `folder`: the
    part of kugetsu's dispatch that is the disk's, not the engine's (each task gets a
    run folder and a log file)."""
    where = Path(tempfile.mkdtemp(prefix="probe-", dir=folder))
    try:
        start = time.perf_counter()
        for n in range(count):
            os.mkdir(where / str(n), 0o700)
        made = time.perf_counter()
        for n in range(count):
            os.close(os.open(where / str(n) / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        done = time.perf_counter()
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return {"mkdir_us": (made - start) / count * 1e6, "create_us": (done - made) / count * 1e6}


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=scratch_root()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fresh_home(
    parent: Path, cap: int, agents: dict[str, list[str]], default: str, *, est_rss: str | None = None
) -> Path:
    """A new, private KUGETSU_HOME with these agents and this cap (and, with est_rss, what
    each agent is expected to hold until measured: the memory guard admits by it)."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=parent))
    home.chmod(0o700)
    lines = [f'default_agent = "{default}"', "", "[capacity]", f"cap = {cap}", ""]
    for name, argv in agents.items():
        lines += [f"[agents.{name}]", "command = " + json.dumps(argv)]
        lines += [f'est_rss = "{est_rss}"', ""] if est_rss else [""]
    (home / "config.toml").write_text("\n".join(lines))
    return home


def home_env(home: Path) -> dict[str, str]:
    return {**os.environ, "KUGETSU_HOME": str(home)}


def timed(argv: Sequence[str], *, stdin: str | None = None, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one command, its output discarded; fails loudly if it fails."""
    start = time.perf_counter()
    subprocess.run(
        argv,
        input=stdin.encode() if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        check=True,
    )
    return time.perf_counter() - start


def write_tasks(path: Path, prompts: Sequence[str], **extra: Any) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "no_worktree": True, **extra}) + "\n" for p in prompts))
    return path


# --- one batch of work through each tool ----------------------------------------------------
# Each runner takes the agent argv, the prompts (one task each; a prompt is appended as the
# task's last argument) and the cap, and returns the wall seconds from submitting the first
# task to the last one settled.


def kugetsu_batch(argv: Sequence[str], prompts: Sequence[str], cap: int, work: Path) -> dict[str, float]:
    """`kugetsu add --from-file` (timed apart) then `kugetsu run --headless` to drain."""
    home = fresh_home(work, cap, {"bench": [*argv, "{prompt}"]}, "bench")
    env = home_env(home)
    tasks = write_tasks(work / f"{home.name}.jsonl", prompts)
    add = timed([*KUGETSU, "add", "--from-file", str(tasks)], env=env)
    run = timed([*KUGETSU, "run", "--headless"], env=env)
    check_all_succeeded(env, len(prompts))
    engine = engine_seconds(home)
    shutil.rmtree(home, ignore_errors=True)
    return {"add_s": add, "run_s": run, "total_s": add + run, "engine_s": engine}


def engine_seconds(home: Path) -> float:
    """Supervisor start to stop as its own event log tells it: the run without interpreter start."""
    with closing(sqlite3.connect(home / "state.db")) as db:
        start, stop = db.execute(
            "SELECT min(CASE WHEN type = 'supervisor_started' THEN ts END),"
            " max(CASE WHEN type = 'supervisor_stopped' THEN ts END) FROM events"
        ).fetchone()
    return float(stop - start)


def check_all_succeeded(env: dict[str, str], expected: int) -> None:
    out = subprocess.run(
        [*KUGETSU, "status", "--json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    counts = json.loads(out)["counts"]
    if counts.get("succeeded") != expected:
        raise SystemExit(f"kugetsu: expected {expected} succeeded, got {counts}")


def xargs_batch(argv: Sequence[str], prompts: Sequence[str], cap: int, work: Path) -> dict[str, float]:
    return {"run_s": timed(["xargs", "-P", str(cap), "-n", "1", *argv], stdin=_lines(prompts))}


def parallel_batch(argv: Sequence[str], prompts: Sequence[str], cap: int, work: Path) -> dict[str, float]:
    env = {**os.environ, "HOME": str(work)}  # keep ~/.parallel out of the user's home
    (work / ".parallel").mkdir(exist_ok=True)
    (work / ".parallel" / "will-cite").touch()
    return {"run_s": timed(["parallel", "-j", str(cap), *argv], stdin=_lines(prompts), env=env)}


def tsp_batch(argv: Sequence[str], prompts: Sequence[str], cap: int, work: Path) -> dict[str, float]:
    """One `tsp -n` call per task on a private server, then a barrier job needing every slot.

    task-spooler starts jobs in order and the barrier needs all `cap` slots, so when it has
    run every earlier job has ended."""
    env = {**os.environ, "TS_SOCKET": str(work / "tsp.socket"), "TS_MAXFINISHED": str(len(prompts) + 10)}
    subprocess.run(["tsp", "-S", str(cap)], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        start = time.perf_counter()
        for prompt in prompts:
            subprocess.run(["tsp", "-n", *argv, prompt], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["tsp", "-n", "-N", str(cap), "true"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["tsp", "-w"], env=env, check=True, stdout=subprocess.DEVNULL)
        return {"run_s": time.perf_counter() - start}
    finally:
        subprocess.run(["tsp", "-K"], env=env, check=False, stdout=subprocess.DEVNULL)


def _lines(prompts: Sequence[str]) -> str:
    return "".join(p + "\n" for p in prompts)


Batch = Callable[[Sequence[str], Sequence[str], int, Path], dict[str, float]]
TOOLS: dict[str, tuple[Batch, str | None]] = {
    "kugetsu": (kugetsu_batch, None),
    "xargs": (xargs_batch, "xargs"),
    "parallel": (parallel_batch, "parallel"),
    "tsp": (tsp_batch, "tsp"),
}
TOOL_LABEL = {
    "kugetsu": "kugetsu run --headless",
    "xargs": "xargs -P",
    "parallel": "GNU parallel -j",
    "tsp": "task-spooler tsp -S",
}


def available_tools() -> list[str]:
    return [name for name, (_, program) in TOOLS.items() if program is None or have(program)]


def compare(
    argv: Sequence[str], prompts: Sequence[str], cap: int, rounds: int, work: Path
) -> dict[str, dict[str, Any]]:
    """Run the same batch through every available tool, interleaved round by round so that
    a noisy moment on the machine hurts all of them alike. Medians per tool."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in available_tools()}
    for n in range(rounds):
        for name in runs:
            batch, _ = TOOLS[name]
            with scratch(name) as tmp:
                result = batch(argv, prompts, cap, tmp)
            runs[name].append(result)
            say(f"  round {n + 1}/{rounds} {name:<9} {result['run_s']:.3f} s")
    out: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        keys = results[0].keys()
        out[name] = {k: median([r[k] for r in results]) for k in keys}
        out[name]["rounds"] = [r["run_s"] for r in results]
    return out


def main_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--rounds", type=int, default=3, help="repeat and take the median (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller numbers, for a smoke run")
    return parser.parse_args()


def emit(args: argparse.Namespace, name: str, figures: dict[str, Any]) -> None:
    text = json.dumps({"benchmark": name, **figures}, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)
