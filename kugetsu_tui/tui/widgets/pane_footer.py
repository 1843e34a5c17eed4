"""The main screen's footer: only the keys that act where the focus is.

Every key of the actions table works in every pane (a key that does not apply says why),
but the footer names only those that apply to the focused pane plus those that apply
anywhere, so that at 80 columns what is shown is what is useful. The screen says which
actions those are (`footer_actions`); the footer asks again whenever the focus moves
(Textual recomposes a footer when the screen's bindings change, and a focus change does
that). While a dialog covers the screen, its keys do nothing, so the footer is empty.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class PaneFooter(Footer):
    def __init__(self, shown: Callable[[], frozenset[str]], **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.shown = shown  # binding actions ("do('pause')") to show now

    def compose(self) -> ComposeResult:
        shown = self.shown()
        if not shown:
            return  # a dialog is in front: its own keys are on its buttons
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.action not in shown:
                continue
            yield widget
