"""Settling cost: N tasks of an agent with no parser (`true`) at cap 4, queued with
`kugetsu add --from-file`, drained with `kugetsu run --headless`. Prints the median wall
time of the run, the engine's own time (supervisor start to stop, from its event log) and
jobs/s; the settle path is in both, once per task.
"""

from __future__ import annotations

from _lib import emit, kugetsu_batch, main_args, median, say, scratch


def main() -> None:
    args = main_args(__doc__ or "")
    tasks, cap = (200 if args.quick else 1000), 4
    prompts = [f"t{n}" for n in range(tasks)]
    runs = []
    for n in range(args.rounds):
        with scratch("settle") as work:
            runs.append(kugetsu_batch(["true"], prompts, cap, work))
        say(
            f"  round {n + 1}/{args.rounds}: run {runs[-1]['run_s']:.3f} s, engine {runs[-1]['engine_s']:.3f} s"
        )
    figures = {k: median([r[k] for r in runs]) for k in ("add_s", "run_s", "engine_s")}
    figures["jobs_per_s"] = tasks / figures["engine_s"]
    say(
        f"settle path: {tasks} x true at cap {cap}: run {figures['run_s']:.3f} s,"
        f" engine {figures['engine_s']:.3f} s ({figures['jobs_per_s']:.0f} jobs/s)"
    )
    emit(args, "settle_path", {"tasks": tasks, "cap": cap, **figures, "rounds": runs})


if __name__ == "__main__":
    main()
