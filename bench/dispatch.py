"""(1) Dispatch throughput: N tasks of `true` at cap 4, from queued to all settled.

kugetsu's figure is `kugetsu run --headless` on a queue filled beforehand with
`kugetsu add --from-file` (tasks run with --no-worktree); the enqueue time is printed
apart. Prints jobs/s for each tool and each one's ratio to xargs.
"""

from __future__ import annotations

from _lib import compare, emit, main_args, say, scratch


def main() -> None:
    args = main_args(__doc__ or "")
    tasks, cap = (200 if args.quick else 1000), 4
    prompts = [f"t{n}" for n in range(tasks)]
    say(f"dispatch: {tasks} x true at cap {cap}")
    with scratch("dispatch") as work:
        results = compare(["true"], prompts, cap, args.rounds, work)
    base = results.get("xargs", {}).get("run_s")
    for name, r in results.items():
        r["jobs_per_s"] = tasks / r["run_s"]
        r["ratio_to_xargs"] = (base / r["run_s"]) if base else None
        say(
            f"  {name:<9} {r['jobs_per_s']:8.0f} jobs/s"
            + (f"  x{r['ratio_to_xargs']:.2f} of xargs" if base else "")
        )
    emit(args, "dispatch", {"tasks": tasks, "cap": cap, "tools": results})


if __name__ == "__main__":
    main()
