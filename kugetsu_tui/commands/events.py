"""`events`: the event log as JSON lines, once or followed."""

from __future__ import annotations

import argparse
import time

from kugetsu_tui.commands.context import Context
from kugetsu_tui.errors import UsageError


def cmd_events(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.engine.model import EventType

    unknown = [t for t in args.type or () if t not in EventType._value2member_map_]
    if unknown:
        known = ", ".join(t.value for t in EventType)
        raise UsageError(f"--type: unknown event type {unknown[0]!r} (expected one of: {known})")
    wanted = {EventType(t) for t in args.type or ()}
    since = args.since
    while True:
        events = ctx.store.events(since=since, task_id=args.task)
        for event in events:
            since = event.id
            if wanted and event.type not in wanted:
                continue
            print(event.to_line(), flush=True)
        if not args.follow:
            return 0
        time.sleep(0.2)
