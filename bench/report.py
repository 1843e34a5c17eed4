"""Merge the figures of one run into JSON and a Markdown table, and put the table in the
README between `<!-- bench:start -->` and `<!-- bench:end -->` (markers added at the end
of the README if missing; nothing outside them is touched).

usage: report.py RAW_DIR OUT_STEM [--label TEXT] [--readme PATH] [--elapsed SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
README_TAIL = (
    "\nRun `bench/run_all.sh` to measure again (under 10 minutes; it installs the peers with"
    " apt-get when missing). Raw figures, earlier runs and where the time goes:"
    " [bench/results/](bench/results/).\n"
)
ORDER = ("kugetsu", "xargs", "parallel", "tsp")
HEAD = {"kugetsu": "kugetsu-tui", "xargs": "xargs -P", "parallel": "GNU parallel -j", "tsp": "tsp -S"}


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    repo = Path(__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=False
    ).stdout.strip()
    from kugetsu_tui import __version__

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _lib import fs_probe, scratch_root

    root = scratch_root()

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "nproc": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kugetsu_tui": __version__,
        "commit": commit,
        "scratch": str(root),
        "fs_scratch": fs_probe(root),
        "fs_tmp": fs_probe(Path(tempfile.gettempdir())),
    }


def ratio(value: float | None) -> str:
    return f"×{value:.2f}" if value is not None else "–"


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.1f} KiB"


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(run: dict[str, Any]) -> str:
    meta, figures = run["machine"], run["figures"]
    lines = [
        f"Measured {meta['date']} on {meta['nproc']} CPUs, {meta['memory_gib']} GiB, Python {meta['python']}, "
        f"kugetsu-tui {meta['kugetsu_tui']} ({meta['commit']}){' — ' + run['label'] if run.get('label') else ''}. "
        "All tools ran the same work in the same run; ratios matter more than absolute times.",
        "",
        f"Scratch folders (homes, repos) in `{meta['scratch']}`: mkdir {meta['fs_scratch']['mkdir_us']:.0f} µs, "
        f"file creation {meta['fs_scratch']['create_us']:.0f} µs (in {tempfile.gettempdir()}: "
        f"{meta['fs_tmp']['mkdir_us']:.0f} µs, {meta['fs_tmp']['create_us']:.0f} µs). kugetsu makes a run "
        "folder and a log file per task; the peers make none.",
        "",
    ]
    tools = [t for t in ORDER if any(t in f.get("tools", {}) for f in figures.values())]
    lines += [row(["figure", *(HEAD[t] for t in tools), "target"]), row(["---"] * (len(tools) + 2))]
    if "dispatch" in figures:
        d = figures["dispatch"]
        cells = []
        for t in tools:
            r = d["tools"].get(t)
            cells.append(f"{r['jobs_per_s']:.0f}/s ({ratio(r['ratio_to_xargs'])})" if r else "–")
        lines.append(
            row(
                [
                    f"(1) dispatch: {d['tasks']} × `true`, cap {d['cap']} (jobs/s, vs xargs)",
                    *cells,
                    "ahead of tsp, ≥ ×0.67 of xargs",
                ]
            )
        )
    if "makespan" in figures:
        m = figures["makespan"]
        cells = []
        for t in tools:
            r = m["tools"].get(t)
            cells.append(f"+{r['overhead_ms']:.0f} ms" if r else "–")
        lines.append(
            row(
                [
                    f"(2) makespan over the ideal {m['ideal_s']:.1f} s: {m['tasks']} × `sleep 0.2`, cap {m['cap']}",
                    *cells,
                    "< 100 ms",
                ]
            )
        )
        k = m["tools"].get("kugetsu")
        if k and "engine_s" in k:
            lines.append(
                row(
                    [
                        "    kugetsu without interpreter start (supervisor log)",
                        f"+{(k['engine_s'] - m['ideal_s']) * 1000:.0f} ms",
                        *([""] * (len(tools) - 1)),
                        "",
                    ]
                )
            )
    if "cap_pressure" in figures:
        c = figures["cap_pressure"]
        cells = [str(c["tools"][t]["max_live"]) if t in c["tools"] else "–" for t in tools]
        lines.append(
            row(
                [
                    f"(6) most agents alive at once: {c['tasks']} tasks, cap {c['cap']}, sampled every "
                    f"{c['interval_ms']:.0f} ms",
                    *cells,
                    f"= {c['cap']}",
                ]
            )
        )
    lines += ["", row(["figure", "kugetsu-tui", "compared with", "ratio", "target"]), row(["---"] * 5)]
    if "worktree" in figures:
        w = figures["worktree"]
        lines.append(
            row(
                [
                    f"(3) worktree add + remove, repo of {w['files']} files (engine calls)",
                    f"{w['engine_ms']:.0f} ms",
                    f"git alone {w['git_ms']:.0f} ms",
                    ratio(w["engine_ratio"]),
                    "≤ ×1.10",
                ]
            )
        )
        lines.append(
            row(
                [
                    f"    same, end to end through `kugetsu run` ({w['e2e_tasks']} tasks, cap 1)",
                    f"{w['e2e_ms_per_task']:.0f} ms/task",
                    f"git alone {w['git_ms']:.0f} ms",
                    ratio(w["e2e_ratio"]),
                    "",
                ]
            )
        )
    if "enqueue" in figures:
        e = figures["enqueue"]
        lines.append(
            row(
                [
                    f"(4) enqueue {e['batch_tasks']:,} tasks with one `add --from-file`",
                    f"{e['batch_s']:.2f} s",
                    "",
                    "",
                    "< 1 s",
                ]
            )
        )
        lines.append(
            row(
                [
                    f"    one `kugetsu add` call (median of {e['calls']})",
                    f"{e['add_call_ms']:.0f} ms",
                    f"bare interpreter {e['bare_interpreter_ms']:.0f} ms",
                    f"+{e['add_over_bare_ms']:.0f} ms",
                    "< +150 ms",
                ]
            )
        )
    if "dashboard" in figures:
        b = figures["dashboard"]
        scale = f"{b['queued']:,} queued, {b['live']} live, {b['failed']:,} failed"
        # Older raw files measured one mode (attached) with its figures at the top level.
        modes = b.get("modes") or {"attached": {**b, "label": "attached to a headless supervisor"}}
        lines.append(row([f"(5) dashboard, {scale}", "", "", "", ""]))
        for d in modes.values():
            paint = f"{d['first_paint_s']:.2f} s" if d["first_paint_s"] is not None else "not seen"
            key = f"{d['key_ms']:.0f} ms" if d["key_ms"] is not None else "not seen"
            cpu_rounds = d.get("idle_cpu_rounds") or [d["idle_cpu_percent"]]
            spread = f"rounds {min(cpu_rounds):.1f}–{max(cpu_rounds):.1f}%" if len(cpu_rounds) > 1 else ""
            lines.append(row([f"    {d['label']}: time to first paint", paint, "", "", ""]))
            lines.append(
                row(
                    [
                        f"    {d['label']}: CPU over {b['idle_s']:.0f} s idle (median)",
                        f"{d['idle_cpu_percent']:.1f}% of a core",
                        spread,
                        "",
                        "< 2%",
                    ]
                )
            )
            lines.append(row([f"    {d['label']}: RSS", f"{d['rss_mib']:.0f} MiB", "", "", "< 120 MiB"]))
            lines.append(
                row([f"    {d['label']}: key press (`?`) to the change on screen", key, "", "", "< 50 ms"])
            )
    if "status_scale" in figures:
        s = figures["status_scale"]
        for key, command, target in (
            ("status", "`kugetsu status` (50-row window)", "< 150 ms, memory flat"),
            ("json_limit_10", "`status --json --limit 10`", "memory flat"),
            ("json_all", "`status --json --all` (every task, streamed)", "memory flat"),
        ):
            r = s[key]
            lead = f"(7) {s['queued']:,} queued: {command}" if key == "status" else f"    {command}"
            cells = [
                f"{r['ms']:.0f} ms, {r['rss_mib']:.0f} MiB",
                _size(r["output_bytes"]) + " of output",
                "",
                target,
            ]
            lines.append(row([lead, *cells]))
    if "dispatch" in figures and "kugetsu" in figures["dispatch"]["tools"]:
        k = figures["dispatch"]["tools"]["kugetsu"]
        lines += [
            "",
            f"kugetsu's dispatch figure is `kugetsu run --headless` on a queue filled beforehand "
            f"(`add --from-file` took {k['add_s']:.2f} s for them; add + run: "
            f"{figures['dispatch']['tasks'] / k['total_s']:.0f} jobs/s). task-spooler's includes one "
            "`tsp` call per task, which is how it is fed.",
        ]
    if run.get("elapsed_s"):
        lines += ["", f"`bench/run_all.sh` took {run['elapsed_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, text: str) -> None:
    body = readme.read_text() if readme.exists() else ""
    block = f"{START}\n{text}{END}"
    if START in body and END in body:
        head, rest = body.split(START, 1)
        tail = rest.split(END, 1)[1]
        body = head + block + tail
    else:
        body = body.rstrip("\n") + "\n\n## Performance\n\n" + block + "\n"
    readme.write_text(body)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("raw", type=Path, help="folder of per-figure JSON files")
    parser.add_argument("out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument("--label", default="")
    parser.add_argument("--readme", type=Path)
    parser.add_argument("--elapsed", type=float)
    args = parser.parse_args()
    figures = {}
    for path in sorted(args.raw.glob("*.json")):
        data = json.loads(path.read_text())
        figures[data.pop("benchmark")] = data
    run = {"label": args.label, "machine": machine(), "elapsed_s": args.elapsed, "figures": figures}
    text = table(run)
    args.out.with_suffix(".json").write_text(json.dumps(run, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(f"# kugetsu-tui benchmarks\n\n{text}")
    if args.readme:
        update_readme(args.readme, table({**run, "label": ""}) + README_TAIL)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
