"""How the dashboard looks, on a deterministic board (fixed clock, readings and facts).

Each snapshot is an SVG under __snapshots__/; regenerate with --snapshot-update and look
at every changed picture before accepting it.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from kugetsu_tui.tui.board import SupervisorState
from kugetsu_tui.tui.screens.full_log import FullLogScreen
from kugetsu_tui.tui.screens.task_forms import RequeueScreen
from tests.helpers.snapshots import snapshot_app
from tests.helpers.tui import wait_for

LARGE = (160, 45)
MEDIUM = (120, 35)
SMALL = (80, 24)


async def settle(pilot: Pilot[Any]) -> None:
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


def test_main_screen_large(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=LARGE, run_before=settle)


def test_main_screen_medium(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, run_before=settle)


def test_main_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=SMALL, run_before=settle)


def test_main_screen_no_color(snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(snapshot_app(), terminal_size=SMALL, run_before=settle)


def test_empty_home(snap_compare: Any) -> None:
    app = snapshot_app(empty=True, probe=SupervisorState())
    assert snap_compare(app, terminal_size=MEDIUM, run_before=settle)


def test_confirm_cancel(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, press=["c"], run_before=settle)


def test_new_task_form(snap_compare: Any) -> None:
    async def fill(pilot: Pilot[Any]) -> None:
        await pilot.press("n")
        await pilot.press(*"add retries to the uploader")
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, run_before=fill)


def test_new_task_form_80x24(snap_compare: Any) -> None:
    async def open_form(pilot: Pilot[Any]) -> None:
        await pilot.press("n")
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SMALL, run_before=open_form)


def test_detail_view(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, press=["enter"], run_before=settle)


def test_help(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, press=["question_mark"], run_before=settle)


def test_filter(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, press=["slash", *"add"], run_before=settle)


def test_requeue_form(snap_compare: Any) -> None:
    async def open_form(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        await wait_for(pilot, lambda: app.dashboard.failed.row_count > 0, "the Failed pane")
        app.dashboard.failed.focus()
        await wait_for(pilot, lambda: app.dashboard.focused_pane() == "failed", "the focus there")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RequeueScreen), "the requeue form")
        await pilot.press(*"the tests still fail")
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, run_before=open_form)


def test_full_log_search(snap_compare: Any) -> None:
    async def search(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        await wait_for(pilot, lambda: app.dashboard.selected_task_id is not None, "a task selected")
        await pilot.press("L")
        await wait_for(pilot, lambda: isinstance(app.screen, FullLogScreen), "the full log")
        await pilot.press("slash", *"plan", "enter")
        await wait_for(pilot, lambda: app.screen.found is not None, "the match")
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=MEDIUM, run_before=search)
