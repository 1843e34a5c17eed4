"""The home, its config and store, opened once per command; how action results print."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home, default_home
from kugetsu_tui.engine.model import ActionResult
from kugetsu_tui.engine.store import Store, StoreCorrupt
from kugetsu_tui.engine.text import one_line
from kugetsu_tui.errors import UsageError


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home = Home(Path(args.home).expanduser() if args.home else default_home()).ensure()
        self.config_path = Path(args.config).expanduser() if args.config else self.home.config_path
        self.config: Config = load_config(self.config_path)
        try:
            self.store = Store(self.home.db_path)
        except StoreCorrupt as err:
            moved = self.home.quarantine()
            raise UsageError(
                f"the state database is corrupt ({err}); it was moved to {moved}, its runs and "
                "worktrees beside it (nothing was deleted); the next command starts with an empty queue"
            ) from None
        self.control = Control(self.home, self.store)


def print_outcomes(ctx: Context, outcomes: Sequence[ActionResult]) -> int:
    for outcome in outcomes:
        done = ctx.control.wait_for(outcome)
        prefix = f"task {done.task_id}: " if done.task_id is not None else ""
        print(f"{prefix}{one_line(done.message)}")
    return 0
