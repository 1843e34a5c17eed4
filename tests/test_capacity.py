"""The capacity advisor over tables of machines, the smoother, metering of real process
trees, the memory reserve and config hot reload through a real supervisor."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import pytest

from kugetsu_tui.engine.capacity import (
    GIB,
    AgentProfile,
    Limits,
    Machine,
    Smoother,
    learn_profile,
    suggest_cap,
)
from kugetsu_tui.engine.readings import TreeMeter
from kugetsu_tui.engine.store import Store
from tests.helpers.harness import FAKE_AGENT, Kugetsu, script, wait_until

EST = AgentProfile(rss=1.0 * GIB, cpu=0.5, measured=False)


def machine(
    cpus: int = 8, avail: float = 16, load: float = 0.0, swap_total: float = 0, swap_used: float = 0
) -> Machine:
    return Machine(
        cpus=cpus,
        cpu_percent=None,
        load1=load,
        mem_total=int(64 * GIB),
        mem_available=int(avail * GIB),
        swap_total=int(swap_total * GIB),
        swap_used=int(swap_used * GIB),
    )


@pytest.mark.parametrize(
    ("case", "m", "profile", "live", "expected", "bound_by"),
    [
        ("many cpus, little memory", machine(cpus=32, avail=5), EST, 0, 3, "memory"),
        ("few cpus, lots of memory", machine(cpus=2, avail=60), EST, 0, 4, "cpu"),
        ("busy cpus elsewhere", machine(cpus=4, avail=60, load=3.0), EST, 0, 2, "cpu"),
        ("live agents count as room", machine(cpus=32, avail=4), EST, 3, 5, "memory"),
        (
            "swap half used: no room for more",
            machine(cpus=32, avail=10, swap_total=8, swap_used=6),
            EST,
            2,
            2,
            "swap",
        ),
        (
            "agents heavier than the estimate",
            machine(cpus=32, avail=10),
            AgentProfile(rss=4.0 * GIB, cpu=0.5, measured=True),
            0,
            2,
            "measured",
        ),
        ("no memory at all still allows the minimum", machine(cpus=32, avail=1), EST, 0, 1, "[1, 16]"),
        ("a huge machine is kept to the max", machine(cpus=256, avail=900), EST, 0, 16, "[1, 16]"),
    ],
)
def test_suggest_cap_over_machines(
    case: str, m: Machine, profile: AgentProfile, live: int, expected: int, bound_by: str
) -> None:
    suggestion = suggest_cap(m, Limits(cap_min=1, cap_max=16, memory_reserve=2 * GIB), profile, live)
    assert suggestion.cap == expected, (case, suggestion.reason)
    assert bound_by in suggestion.reason
    # The reason names the binding constraint first, with figures a person can check.
    assert "→" in suggestion.reason


def test_profile_uses_measurements_as_soon_as_there_are_any() -> None:
    assert learn_profile([], [], est_rss=5e8, est_cpu=1.0) == AgentProfile(5e8, 1.0, False, est_rss=5e8)
    one = learn_profile([3.5 * GIB], [0.07], est_rss=1 * GIB, est_cpu=0.5)
    assert (one.rss, one.cpu, one.source) == (3.5 * GIB, 0.07, "measured over 1")
    # Agents running now at 3.5 GiB against an estimate of 1 GiB: believed at once.
    now = learn_profile([], [], 1 * GIB, 0.5, live_peaks=[3.4 * GIB, 3.5 * GIB], live_shares=[0.1, 0.05])
    assert (now.rss, now.source, now.cpu_source) == (3.5 * GIB, "measured over 2", "measured over 2")
    # Running ones still small (just started) do not talk the estimate down.
    young = learn_profile([], [], 1 * GIB, 0.5, live_peaks=[100 * 2**20], live_shares=[0.3])
    assert (young.rss, young.source) == (1 * GIB, "estimated")
    learned = learn_profile([1e9, 2e9, 4e9], [0.1, 0.2, 0.9], est_rss=5e8, est_cpu=1.0)
    assert (learned.rss, learned.cpu, learned.samples) == (2e9, 0.2, 3)


def test_a_zero_memory_estimate_falls_back_to_the_configured_one() -> None:
    # Agents not sampled yet (or tiny) must not read "~0.0 GiB each → 4137".
    unsampled = learn_profile([0.0, 0.0], [0.0, 0.0], est_rss=1 * GIB, est_cpu=0.5)
    assert unsampled.rss == 1 * GIB and not unsampled.measured
    zero = AgentProfile(rss=0.0, cpu=0.5, measured=True, samples=2, est_rss=1 * GIB)
    suggestion = suggest_cap(machine(cpus=64, avail=10), Limits(cap_max=64), zero, 0)
    assert suggestion.cap == 8, suggestion.reason
    assert "~1.0 GiB each (estimated)" in suggestion.reason and "0.0 GiB each" not in suggestion.reason


def test_memory_far_above_the_cpu_bound_is_not_the_limit() -> None:
    light = AgentProfile(rss=200 * 2**20, cpu=0.5, measured=True, samples=4)
    suggestion = suggest_cap(machine(cpus=2, avail=200), Limits(), light, 0)
    assert suggestion.cap == 4
    assert "memory: not the limit" in suggestion.reason and "→ 1000" not in suggestion.reason
    assert "~0.2 GiB each" in suggestion.reason


def test_the_profile_ignores_short_failed_attempts(tmp_path) -> None:
    """Attempts that failed within seconds (a bad key, a missing binary) say nothing of what
    the agent costs; long ones and successes of any length do."""
    from kugetsu_tui.engine.capacity import profile_in_play
    from kugetsu_tui.engine.config import Config
    from kugetsu_tui.engine.model import NewTask

    store = Store(tmp_path / "state.db")
    try:
        rows = [  # (state, wall seconds, cpu seconds, peak RSS)
            ("failed", 1.0, 0.9, 300 * 2**20),  # 0.9 core: what pushed the old profile up
            ("failed", 2.0, 1.6, 300 * 2**20),
            ("failed", 0.5, 0.4, 300 * 2**20),
            ("succeeded", 100.0, 7.0, 2 * GIB),
            ("failed", 60.0, 4.2, 2 * GIB),
        ]
        ids = [store.add([NewTask(prompt=f"t{n}", agent="claude", repo=None)], 0.0)[0] for n in range(5)]
        for task_id, (state, wall, cpu, peak) in zip(ids, rows, strict=True):
            store.db.execute(
                "UPDATE tasks SET state = ?, started_at = 1000, ended_at = ?, cpu_seconds = ?,"
                " peak_rss = ? WHERE id = ?",
                (state, 1000 + wall, cpu, peak, task_id),
            )
        store.db.commit()
        profile = profile_in_play(store, Config(default_agent="claude"))
    finally:
        store.close()
    assert profile.samples == 2 and profile.source == "measured over 2" == profile.cpu_source
    assert profile.cpu == pytest.approx(0.07)
    assert profile.rss == 2 * GIB


def test_presets_are_realistic_before_anything_is_measured(tmp_path) -> None:
    from kugetsu_tui.engine.capacity import profile_in_play
    from kugetsu_tui.engine.config import Config

    store = Store(tmp_path / "state.db")
    try:
        profile = profile_in_play(store, Config(default_agent="claude"))
    finally:
        store.close()
    assert not profile.measured and profile.source == "estimated"
    assert 1 * GIB <= profile.rss <= 2 * GIB  # Claude Code with its MCP servers
    assert profile.cpu < 0.25


# A neighbour's load coming and going on a 2-core box, the 1-minute load average read every
# 10 s (recorded while a test suite ran next door in bursts), with claude agents measured at
# 0.07 core and 1.5 GiB each.
NEIGHBOUR = [0.3, 0.4, 1.2, 1.9, 2.1, 1.5, 0.9, 0.5, 0.4, 1.6, 2.2, 2.0, 1.1, 0.6, 0.4, 0.3]
NEIGHBOUR += [1.4, 2.3, 2.6, 2.4, 1.3, 0.7, 0.5, 1.8, 2.0, 0.9, 0.4, 0.3, 0.3, 1.7, 2.5, 1.2]
CLAUDE = AgentProfile(rss=1.5 * GIB, cpu=0.07, measured=True, samples=12)


def _replay(loads: list[float], avail: list[float], every: float = 10.0) -> list[tuple[float, int, int]]:
    """(time, raw suggestion, smoothed) for each recorded reading."""
    now = [0.0]
    smoother = Smoother(clock=lambda: now[0])
    out = []
    for n, (load, mem) in enumerate(zip(loads, avail, strict=True)):
        now[0] = n * every
        raw = suggest_cap(machine(cpus=2, avail=mem, load=load), Limits(cap_max=16), CLAUDE, 2)
        out.append((now[0], raw.cap, smoother.update(raw.cap, raw.by_memory)))
    return out


def _steps(trace: list[tuple[float, int, int]]) -> list[tuple[float, int]]:
    return [(t, b - a) for (_, _, a), (t, _, b) in itertools.pairwise(trace) if b != a]


@pytest.mark.parametrize(
    ("case", "loads", "avail", "max_steps"),
    [
        ("a neighbour comes and goes", NEIGHBOUR * 3, [20.0] * len(NEIGHBOUR) * 3, 0),
        ("the neighbour leaves for good", [2.2] * 6 + [0.2] * 90, [20.0] * 96, 16),
        ("the neighbour arrives and stays", [0.2] * 6 + [2.4] * 90, [20.0] * 96, 16),
        ("load and memory both bounce, memory never short", NEIGHBOUR, [30.0, 26.0, 34.0, 28.0] * 8, 0),
    ],
)
def test_suggestions_over_recorded_readings_do_not_flap(
    case: str, loads: list[float], avail: list[float], max_steps: int
) -> None:
    trace = _replay(loads, avail)
    raws = {raw for _, raw, _ in trace}
    steps = _steps(trace)
    assert len(steps) <= max_steps, (case, steps)
    assert all(abs(d) == 1 for _, d in steps), (case, steps)  # one step at a time
    directions = {d for _, d in steps}
    assert len(directions) <= 1, (case, steps)  # never reverses: no flapping
    times = [t for t, _ in steps]
    assert all(b - a >= 60.0 for a, b in itertools.pairwise(times)), (case, steps)
    if max_steps == 0:
        assert len(raws) > 1, case  # the raw suggestion did move: the smoothing held it
    else:
        assert steps, case  # a lasting change is followed, one step per interval


def test_memory_short_is_followed_at_once() -> None:
    # Plenty, then a neighbour takes memory: 2 live agents, 1.5 GiB each, 2 GiB reserve.
    trace = _replay([0.2] * 10, [20.0] * 5 + [4.0] * 5)
    assert trace[4][2] > 2
    assert trace[5][2] == 3 == trace[5][1]  # memory bound 2 + floor(2/1.5): at once, no waiting


def test_a_suggestion_far_below_the_cap_says_why() -> None:
    from kugetsu_tui.engine.capacity import why_far_below

    assert why_far_below(1, 50) is not None and "far below" in (why_far_below(1, 50) or "")
    assert why_far_below(4, 5) is None and why_far_below(7, 4) is None


def test_admissions_in_one_tick_count_what_the_earlier_ones_take() -> None:
    from kugetsu_tui.engine.capacity import admissions_that_fit

    # 19.1 GiB available, 18 GiB reserve, 1 GiB each: two, not four.
    assert admissions_that_fit(19.1 * GIB, 18 * GIB, 1 * GIB) == 2
    assert admissions_that_fit(17.9 * GIB, 18 * GIB, 1 * GIB) == 0
    assert admissions_that_fit(18.0 * GIB, 18 * GIB, 0.0) == 1


ALLOC = (
    "import os, subprocess, sys, time\n"
    "mib = int(sys.argv[1]); kids = int(sys.argv[2])\n"
    "ballast = bytearray(mib * 2**20)\n"
    "for i in range(0, len(ballast), 4096): ballast[i] = 1\n"  # touch every page: real RSS
    "procs = [subprocess.Popen([sys.executable, '-c', sys.argv[3], str(mib), '0', sys.argv[3]])"
    " for _ in range(kids)]\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


def _sample_until_ready(meter: TreeMeter, pid: int, procs: int, floor: int) -> tuple[int, int]:
    def grown() -> tuple[int, int] | None:
        usage = meter.sample([pid]).get(pid)
        if usage and usage.procs == procs and usage.rss >= floor:
            return usage.rss, usage.procs
        return None

    wait_until(grown, "the tree to allocate its memory")
    time.sleep(0.3)  # not a barrier: RSS settles a moment after the pages are touched
    usage = meter.sample([pid])[pid]
    return usage.rss, usage.procs


def test_metered_rss_of_one_process_is_within_20_percent() -> None:
    baseline_proc = subprocess.Popen([sys.executable, "-c", ALLOC, "0", "0", ALLOC], stdout=subprocess.PIPE)
    proc = subprocess.Popen([sys.executable, "-c", ALLOC, "200", "0", ALLOC], stdout=subprocess.PIPE)
    try:
        meter = TreeMeter()
        baseline, _ = _sample_until_ready(meter, baseline_proc.pid, 1, 1)
        rss, procs = _sample_until_ready(meter, proc.pid, 1, 150 * 2**20)
        assert procs == 1
        assert abs((rss - baseline) - 200 * 2**20) <= 0.2 * 200 * 2**20, rss
    finally:
        for p in (proc, baseline_proc):
            p.kill()
            p.wait()


def test_a_tree_of_three_processes_is_summed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", ALLOC, "60", "2", ALLOC], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        rss, procs = _sample_until_ready(TreeMeter(), proc.pid, 3, 3 * 60 * 2**20)
        assert procs == 3
        assert 3 * 60 * 2**20 <= rss <= 1.2 * 3 * 60 * 2**20 + 3 * 30 * 2**20  # + 3 interpreters
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_memory_reserve_blocks_admission_until_lowered_by_hot_reload(kg: Kugetsu) -> None:
    kg.write_config(capacity={"memory_reserve": "100TiB"})
    first = kg.add("sleep 0.1")
    kg.start_supervisor()

    def blocked() -> bool:
        task = kg.task(first)
        return task["state"] == "queued" and "memory reserve" in (task["wait_reason"] or "")

    wait_until(blocked, "the wait reason to name the memory reserve")
    time.sleep(0.5)  # not a barrier: a window in which the task must not start
    assert kg.task(first)["state"] == "queued"
    assert kg.task(first)["attempts"] == 0  # failing closed spends nothing
    kg.write_config(capacity={"memory_reserve": "1MiB"})
    kg.wait_state(first, "succeeded")
    assert any(e["type"] == "config_reloaded" for e in kg.events())


def test_hot_reload_applies_a_new_cap_and_survives_garbage(kg: Kugetsu) -> None:
    kg.start_supervisor()
    kg.write_config(capacity={"cap": 5})
    wait_until(
        lambda: any(e["type"] == "cap_changed" and e["cap"] == 5 for e in kg.events()),
        "the supervisor to apply the new cap",
    )
    assert kg.status()["cap"] == 5
    good = kg.config_path.read_text()
    kg.config_path.write_text("[capacity\ncap = = 7\n")
    # The CLI refuses the broken file too (exit 2); read what the supervisor said from the store.
    store = Store(kg.home / "state.db")
    try:
        wait_until(lambda: store.meta().get("config_error", (None, 0))[0], "the config error to show")
        errors = [e for e in store.events() if e.type == "config_error"]
        assert errors and "config.toml" in errors[-1].data["error"]
        assert store.meta()["cap"][0] == 5  # the last good config stays in force
    finally:
        store.close()
    # Reading works while the file is broken, and says it is broken.
    for args in (("status",), ("status", "--json"), ("cap",), ("events",)):
        done = kg.cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "config.toml" in done.stderr and "not valid TOML" in done.stderr, args
    assert "config.toml" in (json.loads(kg.cli("status", "--json").stdout)["config_error"] or "")
    assert kg.cli("cap", "4").returncode == 2  # a change is refused while the file is broken
    kg.config_path.write_text(good)
    wait_until(lambda: any(e["type"] == "config_ok" for e in kg.events()), "the fixed file to be recorded")
    task = kg.add("ok")
    kg.wait_state(task, "succeeded")


def test_status_shows_usage_and_a_checkable_suggestion(kg: Kugetsu) -> None:
    task = kg.add("sleep 3")
    kg.start_supervisor()

    def measured() -> dict | None:
        usage = kg.task(task)["usage"]
        return usage if usage and usage["rss"] else None

    usage = wait_until(measured, "the agent's usage to be measured")
    assert usage["procs"] >= 2  # the wrapper and the agent
    assert usage["rss"] > 1_000_000
    status = kg.status()
    assert 1 <= status["suggested_cap"] <= 16
    assert "memory:" in status["cap_reason"] and "cpu:" in status["cap_reason"]
    assert status["machine"]["cpus"] >= 1 and status["machine"]["mem_available"] > 0
    queued = kg.add("ok")
    assert kg.task(queued)["usage"] is None  # never measured: unknown, not zero


def test_auto_mode_applies_the_suggestion_with_a_reason(kg: Kugetsu) -> None:
    kg.write_config(capacity={"cap": 9, "mode": "auto", "max": 2})
    kg.start_supervisor()
    changes = wait_until(
        lambda: [e for e in kg.events() if e["type"] == "cap_changed"], "auto mode to apply the suggestion"
    )
    # What it suggests depends on this machine's load; that it applies it, within max, does not.
    assert 1 <= changes[-1]["cap"] <= 2 and "→" in changes[-1]["reason"]
    status = kg.status()
    assert status["cap"] == changes[-1]["cap"] == status["suggested_cap"]


def test_memory_pressure_pauses_the_newest_agent_and_resumes_it(kg: Kugetsu) -> None:
    kg.write_config(capacity={"memory_pressure": "pause_newest", "memory_reserve": "1MiB"})
    older = kg.add("sleep 30")
    kg.start_supervisor()
    kg.wait_state(older, "running")
    newer = kg.add("sleep 30")
    kg.wait_state(newer, "running")
    # Now memory is "short": available is far under half of a huge reserve.
    kg.write_config(capacity={"memory_pressure": "pause_newest", "memory_reserve": "100TiB"})
    kg.wait_state(newer, "paused")
    assert kg.task(older)["state"] == "running"
    paused = [e for e in kg.events(newer) if e["type"] == "task_paused"]
    assert paused and "memory pressure" in paused[-1]["why"]
    kg.write_config(capacity={"memory_pressure": "pause_newest", "memory_reserve": "1MiB"})
    kg.wait_state(newer, "running")


def test_pressure_relief_pauses_one_then_waits_to_see_and_never_the_last() -> None:
    from kugetsu_tui.engine.capacity import PressureRelief

    relief = PressureRelief(settle=20, respect=300)
    running = [(1, 100.0), (2, 200.0), (3, 300.0)]
    reserve = 4 * GIB

    def step(now: float, available: float, paused_rss: dict[int, float]) -> tuple[str, int] | None:
        decided = relief.decide(
            now, available, reserve, [r for r in running if r[0] not in paused_rss], paused_rss
        )
        if decided and decided[0] == "pause":
            relief.record_pause(decided[1], now)
        elif decided:
            relief.record_resume(decided[1])
        return decided

    assert step(0, 1 * GIB, {}) == ("pause", 3)  # the newest
    for t in (2, 4, 10, 18):  # still short, but give the pause time to show
        assert step(t, 1 * GIB, {3: 3 * GIB}) is None
    assert step(20, 1 * GIB, {3: 3 * GIB}) == ("pause", 2)
    assert step(45, 1 * GIB, {3: 3 * GIB, 2: 3 * GIB}) is None  # never the last one running
    # Agent 1 finishes; nothing runs: one is resumed at once, whatever memory says.
    running[:] = [r for r in running if r[0] != 1]
    assert step(46, 1 * GIB, {3: 3 * GIB, 2: 3 * GIB}) == ("resume", 3)


def test_pressure_relief_resumes_when_memory_plus_the_paused_ones_leave_the_reserve() -> None:
    from kugetsu_tui.engine.capacity import PressureRelief

    relief = PressureRelief(settle=20)
    running = [(1, 100.0), (2, 200.0)]
    reserve = 4 * GIB
    assert relief.decide(0, 1 * GIB, reserve, running, {}) == ("pause", 2)
    relief.record_pause(2, 0)
    # 2.5 GiB available (no longer short) and 2 GiB held by the paused one: 4.5 >= 4.
    assert relief.decide(5, 2.5 * GIB, reserve, running[:1], {2: 2 * GIB}) is None  # wait to see
    assert relief.decide(25, 2.5 * GIB, reserve, running[:1], {2: 2 * GIB}) == ("resume", 2)
    relief.record_resume(2)
    assert relief.paused == []


def test_a_persons_resume_wins_for_a_while() -> None:
    from kugetsu_tui.engine.capacity import PressureRelief

    relief = PressureRelief(settle=20, respect=300)
    running = [(1, 100.0), (2, 200.0), (3, 300.0)]
    reserve = 4 * GIB
    assert relief.decide(0, 1 * GIB, reserve, running, {}) == ("pause", 3)
    relief.record_pause(3, 0)
    # A person resumes 3 (it runs again, no longer among the paused): 2 is paused instead.
    assert relief.decide(30, 1 * GIB, reserve, running, {}) == ("pause", 2)
    relief.record_pause(2, 30)
    later = [r for r in running if r[0] != 2]
    assert relief.decide(60, 1 * GIB, reserve, later, {2: GIB}) == ("pause", 1)  # not 3, the person's
    relief.record_pause(1, 60)
    assert relief.decide(400, 1 * GIB, reserve, [(3, 300.0)], {2: GIB, 1: GIB}) is None  # the last one runs


def test_admissions_count_what_agents_just_started_will_take(kg: Kugetsu) -> None:
    """An agent expected to take far more than the room above the reserve: the first one
    starts, and the next wait until it settled (it never grows to its estimate), whatever the cap."""
    kg.write_config(
        capacity={"cap": 4, "memory_reserve": "1MiB"},
        agents={"fake": {"command": [sys.executable, str(FAKE_AGENT), "{prompt}"], "est_rss": "1TiB"}},
    )
    ids = [kg.add(script(("sleep", 1.5))) for _ in range(3)]
    kg.start_supervisor()

    def waiting() -> bool:
        tasks = kg.tasks()
        if sum(t["state"] == "running" for t in tasks.values()) != 1:
            return False
        queued = [t for t in tasks.values() if t["state"] == "queued"]
        reasons = [t["wait_reason"] or "" for t in queued]
        return len(queued) == 2 and all("soon taken by agents just started" in r for r in reasons)

    wait_until(waiting, "one agent to run and two to wait for its memory")
    for task_id in ids:
        kg.wait_state(task_id, "succeeded", timeout=60)
    starts = sorted((kg.task(i)["started_at"], kg.task(i)["ended_at"]) for i in ids)
    for (_, ended), (started, _) in itertools.pairwise(starts):
        assert started >= ended  # one at a time, although the cap is 4
