"""The suggested cap as a person meets it in the header and behind `a`."""

from __future__ import annotations

import time
from dataclasses import replace

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.messages import AgentSlots, SupervisorFacts
from kugetsu_tui.engine.model import CapMode
from kugetsu_tui.tui.board import SupervisorState
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from tests.helpers.tui import DashboardHarness as Harness
from tests.helpers.tui import screen_lines, wait_for

SIZE = (120, 35)
REASON = "cpu: 2 cores, 0.5 not busy elsewhere, agents use ~0.50 core each (measured over 9) → 1"


def state(mode: str, cap: int, suggested: int) -> SupervisorState:
    return SupervisorState(cap=cap, cap_mode=mode, suggested_cap=suggested, cap_reason=REASON)


async def test_a_asks_before_a_suggestion_far_below_the_cap_and_says_why(harness: Harness) -> None:
    harness.configure(cap=8)
    app = harness.app(probe=lambda: state("suggest", 8, 1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "suggested 1 — a to apply" in screen_lines(app)[0]
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        shown = "\n".join(screen_lines(app))
        assert "Lower the cap from 8 to 1?" in shown and "far below" in shown and "measured over 9" in shown
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the question to close")
        assert load_config(harness.home.config_path).cap == 8  # backing out changes nothing
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: load_config(harness.home.config_path).cap == 1, "the cap applied")


async def test_a_applies_a_nearby_suggestion_at_once(harness: Harness) -> None:
    harness.configure(cap=5)
    app = harness.app(probe=lambda: state("suggest", 5, 4))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await wait_for(pilot, lambda: load_config(harness.home.config_path).cap == 4, "the cap applied")
        assert not isinstance(app.screen, ConfirmScreen)


async def test_fixed_mode_shows_no_call_to_apply(harness: Harness) -> None:
    app = harness.app(probe=lambda: state("fixed", 2, 6))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "a to apply" not in header and "(a)" not in header
        assert "advisor: 6" in header


async def test_a_suggestion_from_a_ray_cluster_says_it_is_the_clusters(harness: Harness) -> None:
    """What a supervisor running agents on a Ray cluster publishes: its figures are the cluster's."""
    machine = {
        "cpus": 2,
        "mem_total": 2**33,
        "mem_available": 2**32,
        "scope": "cluster",
        "nodes": 2,
        "slots": 4,
    }
    facts = SupervisorFacts(
        supervisor_pid=1, cap=2, cap_mode=CapMode("suggest"), suggested_cap=4, machine=machine
    )
    app = harness.app(probe=lambda: SupervisorState.from_facts(facts))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "suggested 4 for the cluster — a to apply" in header, header
        assert "cluster of 2 nodes, 4 slots" in header, header


async def test_the_header_has_a_line_per_node_of_the_cluster(harness: Harness) -> None:
    """Agents on a Ray cluster: each node's live agents of its slots, CPUs and memory, one
    line each (as `kugetsu status` prints them), the header growing to hold them."""
    machine = {
        "cpus": 6,
        "mem_total": 3 * 2**33,
        "mem_available": 2**33,
        "scope": "cluster",
        "nodes": 6,
        "slots": 12,
    }
    nodes = tuple(
        {
            "node_id": f"{n:02d}" * 14,
            "host": f"box{n}",
            "address": f"127.0.0.{n + 1}",
            "live": n % 3,
            "slots": 2,
            "cpus": 1,
            "memory": 2**33,
        }
        for n in range(6)
    )
    facts = SupervisorFacts(supervisor_pid=1, cap=4, cap_mode=CapMode("fixed"), machine=machine)
    app = harness.app(probe=lambda: replace(SupervisorState.from_facts(facts), nodes=nodes))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        shown = [line.strip() for line in lines[2:8]]
        assert shown[0].startswith("⎈ node box0 127.0.0.1 000000000000: 0/2 agents live, 1 CPUs, 8.0 GiB"), (
            lines[:8]
        )
        assert shown[1].startswith("⎈ node box1 127.0.0.2"), lines[:8]
        assert "1/2 agents live" in shown[1]
        assert shown[4].startswith("⎈ … and 2 more nodes (kugetsu status)"), lines[:8]
        assert "Active" in lines[7], lines[:8]  # the panes start below the header's 7 lines


async def test_an_agent_held_back_by_rate_limits_shows_its_slots_in_the_header(harness: Harness) -> None:
    """A published lowered limit: "⇣ sleeper 1/2 slots", and the queue waits on it."""
    harness.configure(cap=4)
    running = harness.add("running")
    harness.store.admit(4, time.time())  # one of its tasks is live
    waiting = harness.add("waiting")
    now = time.time()
    facts = SupervisorFacts(supervisor_pid=1, cap=4, slots={"sleeper": AgentSlots(1, 2, now, now)})
    app = harness.app(probe=lambda: SupervisorState.from_facts(facts))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "⇣ sleeper 1/2 slots" in header, header
        await wait_for(
            pilot, lambda: app.board is not None and waiting in app.board.view.wait_reason, "the queue"
        )
        assert app.board.view.wait_reason[waiting] == "agent sleeper at its limit (1/1 live)"
        assert running not in app.board.view.wait_reason
