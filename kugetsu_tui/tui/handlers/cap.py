"""Handlers for the cap: raise, lower, accept the suggestion (saved to config.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kugetsu_tui.engine.capacity import why_far_below
from kugetsu_tui.engine.model import CapMode
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from kugetsu_tui.tui.app import KugetsuApp


def set_cap(app: KugetsuApp, cap: int) -> None:
    if app.supervisor_state().cap_mode == CapMode.AUTO:
        app.notify(
            "[capacity] mode is auto, so the advisor will keep setting the cap",
            severity="warning",
            timeout=5,
        )
    if app.act("cap", lambda: app.control.set_cap(cap)):
        app.reread_config()
        app.refresh_board()


def cap_up(app: KugetsuApp) -> None:
    set_cap(app, app.current_cap() + 1)


def cap_down(app: KugetsuApp) -> None:
    if app.current_cap() <= 1:
        app.notify("the cap is already 1", severity="warning", timeout=3)
        return
    set_cap(app, app.current_cap() - 1)


def accept_cap(app: KugetsuApp) -> None:
    suggested = app.supervisor_state().suggested_cap
    if suggested is None:
        app.notify("no suggested cap yet", severity="warning", timeout=3)
    elif suggested == app.current_cap():
        app.notify(f"the cap is already {suggested}", timeout=3)
    elif (why := why_far_below(suggested, app.current_cap())) is not None:
        # One key press must not take a cap of 50 to 1 unasked: say why, then ask.
        reason = app.supervisor_state().cap_reason or "no reason given"

        def answered(yes: bool | None) -> None:
            if yes:
                set_cap(app, suggested)

        app.push_screen(
            ConfirmScreen(
                f"Lower the cap from {app.current_cap()} to {suggested}?",
                f"{why}.\n\nWhy {suggested}: {one_line(reason)}",
                yes=f"Set cap {suggested}",
            ),
            answered,
        )
    else:
        set_cap(app, suggested)
