"""(2) Makespan overhead: N tasks of `sleep 0.2` at cap 4, measured makespan minus the ideal.

The ideal is ceil(N / cap) x 0.2 s (2.0 s for 40 tasks). kugetsu's makespan is the wall
time of `kugetsu run --headless`, interpreter start included; the enqueue is timed apart.
"""

from __future__ import annotations

import math

from _lib import compare, emit, main_args, say, scratch


def main() -> None:
    args = main_args(__doc__ or "")
    tasks, cap, seconds = 40, 4, 0.2
    ideal = math.ceil(tasks / cap) * seconds
    say(f"makespan: {tasks} x sleep {seconds} at cap {cap} (ideal {ideal:.1f} s)")
    with scratch("makespan") as work:
        results = compare(["sleep"], [str(seconds)] * tasks, cap, args.rounds, work)
    for name, r in results.items():
        r["overhead_ms"] = (r["run_s"] - ideal) * 1000
        say(f"  {name:<9} makespan {r['run_s']:.3f} s, {r['overhead_ms']:+.0f} ms over the ideal")
    emit(args, "makespan", {"tasks": tasks, "cap": cap, "ideal_s": ideal, "tools": results})


if __name__ == "__main__":
    main()
