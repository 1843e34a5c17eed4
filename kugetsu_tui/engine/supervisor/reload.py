"""Config hot reload: the config file is watched (watchfiles) and, as a fallback, its
signature compared on every sample; a change is applied at once, and a broken file keeps
the last good config in force, with the error published."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.model import EventType
from kugetsu_tui.engine.supervisor import advisor, requests
from kugetsu_tui.errors import ConfigError

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor


def config_signature(sup: Supervisor) -> tuple[int, int] | None:
    if sup.config.path is None:
        return None
    try:
        info = sup.config.path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


async def watch_config(sup: Supervisor) -> None:
    path = sup.config.path
    if path is None or not path.parent.is_dir():
        return
    # Imported beside the loop, not in it: it takes tens of milliseconds, as the first
    # agents run.
    for module in ("watchfiles", "anyio._backends._asyncio"):  # (awatch's backend, imported late)
        await asyncio.to_thread(importlib.import_module, module)
    from watchfiles import awatch

    name = path.name
    async for _changes in awatch(
        path.parent,
        watch_filter=lambda _c, p: Path(p).name == name,
        debounce=50,
        step=50,
        recursive=False,
    ):
        with sup.unless_disk_full():
            reload_config(sup)


def reload_config(sup: Supervisor) -> None:
    """Apply the config file as it is now; a broken one keeps the last good in force."""
    assert sup.config.path is not None
    now = sup.clock()
    sup.loaded_signature = config_signature(sup)
    try:
        new = load_config(sup.config.path)
    except ConfigError as err:
        sup.config_error = str(err)
        sup.store.record(now, EventType.CONFIG_ERROR, None, {"error": str(err)})
        advisor.publish(sup, now)
        return
    was_broken = sup.config_error is not None
    old, sup.config, sup.config_error = sup.config, new, None
    if was_broken:
        sup.store.record(now, EventType.CONFIG_OK, None, {"path": str(new.path)})
        advisor.publish(sup, now)
    if new == old:
        return
    sup.smoother.current = None  # a deliberate change: follow the next reading at once
    sup.hooks.hooks = list(new.hooks)
    sup.store.record(now, EventType.CONFIG_RELOADED, None, {"path": str(new.path)})
    if new.cap_mode != "auto" and new.cap != sup.cap:
        requests.set_cap(sup, new.cap, now, reason="config reloaded")
    advisor.publish(sup, now)
    sup.wake()
