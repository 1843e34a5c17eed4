"""The home, its config and store, opened once per command; how action results print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kugetsu_tui.engine.config import Config, load_config
from kugetsu_tui.engine.control import Control
from kugetsu_tui.engine.home import Home, default_home
from kugetsu_tui.engine.messages import ActionResult
from kugetsu_tui.engine.store import Store, StoreCorrupt
from kugetsu_tui.engine.text import one_line, printable
from kugetsu_tui.errors import ConfigError, UsageError


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home = Home(Path(args.home).expanduser() if args.home else default_home()).ensure()
        self.config_path = Path(args.config).expanduser() if args.config else self.home.config_path
        self.config_broken: str | None = None
        try:
            self.config: Config = load_config(self.config_path)
        except ConfigError as err:
            if not reads_only(args):
                raise
            # Reading must work while the file is broken: on the defaults, saying so (a
            # running supervisor keeps the last good config and publishes what it uses).
            self.config, self.config_broken = Config(path=self.config_path), str(err)
            print(
                f"kugetsu: note: {printable(str(err))}; showing the defaults until it is fixed",
                file=sys.stderr,
            )
        try:
            self.store = Store(self.home.db_path)
        except StoreCorrupt as err:
            moved = self.home.quarantine()
            raise UsageError(
                f"the state database is corrupt ({err}); it was moved to {moved}, its runs and "
                "worktrees beside it (nothing was deleted); the next command starts with an empty queue"
            ) from None
        self.control = Control(self.home, self.store)


READING = frozenset({"cmd_status", "cmd_events", "cmd_logs", "cmd_tui", "cmd_agents"})


def reads_only(args: argparse.Namespace) -> bool:
    """Commands that only read: they work while config.toml is broken."""
    name = getattr(getattr(args, "func", None), "__name__", "")
    if name == "cmd_cap":
        return args.cap is None and not args.accept
    if name == "cmd_notify":
        return bool(args.hook)  # a hook must not fail its agent over a broken config
    return name in READING or (name == "cmd_run" and not args.headless)


def print_outcomes(ctx: Context, outcomes: Sequence[ActionResult]) -> int:
    for outcome in outcomes:
        done = ctx.control.wait_for(outcome)
        prefix = f"task {done.task_id}: " if done.task_id is not None else ""
        print(f"{prefix}{one_line(done.message)}")
    return 0
