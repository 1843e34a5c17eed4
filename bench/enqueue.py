"""(4) Enqueue: N tasks with one `kugetsu add --from-file`, and the latency of separate
`kugetsu add` calls against a bare interpreter start (`python -c pass`).

Also lists the heaviest imports on the CLI's path (`python -X importtime`).
"""

from __future__ import annotations

import subprocess
import time

from _lib import (
    KUGETSU,
    PYTHON,
    emit,
    fresh_home,
    home_env,
    main_args,
    median,
    say,
    scratch,
    timed,
    write_tasks,
)


def import_times(module: str, top: int) -> list[dict[str, object]]:
    """The modules with the largest cumulative import time under `module`, in microseconds."""
    err = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        rows.append({"module": name.strip(), "self_us": int(self_us), "cumulative_us": int(cumulative_us)})
    rows.sort(key=lambda r: -int(str(r["cumulative_us"])))
    return rows[:top]


def per_call(argv: list[str], calls: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    args = main_args(__doc__ or "")
    batch = 2000 if args.quick else 10_000
    calls = 20 if args.quick else 100
    say(f"enqueue: {batch} tasks via add --from-file; {calls} separate add calls")
    with scratch("enqueue") as work:
        batch_s = []
        for n in range(args.rounds):
            home = fresh_home(work, 4, {"bench": ["true", "{prompt}"]}, "bench")
            tasks = write_tasks(work / f"tasks-{n}.jsonl", [f"task {i}" for i in range(batch)])
            batch_s.append(timed([*KUGETSU, "add", "--from-file", str(tasks)], env=home_env(home)))
        home = fresh_home(work, 4, {"bench": ["true", "{prompt}"]}, "bench")
        env = home_env(home)
        bare = per_call([PYTHON, "-c", "pass"], calls)
        add = per_call([*KUGETSU, "add", "--no-worktree", "one task"], calls, env)
    bare_ms, add_ms = median(bare) * 1000, median(add) * 1000
    imports = import_times("kugetsu_tui.cli", 12)
    say(
        f"  add --from-file  {batch} tasks in {median(batch_s):.3f} s ({batch / median(batch_s):,.0f} tasks/s)"
    )
    say(
        f"  kugetsu add      {add_ms:.1f} ms per call; bare interpreter {bare_ms:.1f} ms; over: {add_ms - bare_ms:.1f} ms"
    )
    say(f"  import kugetsu_tui.cli: {imports[0]['cumulative_us'] / 1000:.1f} ms cumulative")
    emit(
        args,
        "enqueue",
        {
            "batch_tasks": batch,
            "batch_s": median(batch_s),
            "batch_rounds": batch_s,
            "batch_tasks_per_s": batch / median(batch_s),
            "calls": calls,
            "add_call_ms": add_ms,
            "bare_interpreter_ms": bare_ms,
            "add_over_bare_ms": add_ms - bare_ms,
            "cli_import_ms": int(str(imports[0]["cumulative_us"])) / 1000,
            "heaviest_imports": imports,
        },
    )


if __name__ == "__main__":
    main()
