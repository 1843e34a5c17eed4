"""Regenerate screenshots/ from `kugetsu demo`: the main screen and the detail view.

Runs the real dashboard headless on a fresh demo sandbox (simulated agents, a real
supervisor), waits until the Active, Queued and Failed panes all hold something, and
saves SVGs. PNGs are rendered too when cairosvg or rsvg-convert is available.

    python scripts/screenshots.py [--out screenshots] [--size 120x35]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kugetsu_tui.demo import prepare
from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.store import Store
from kugetsu_tui.tui.app import KugetsuApp

# The font the SVGs name is fetched from the web by browsers; renderers here get one
# that is installed and has the state symbols.
PNG_FONT = "DejaVu Sans Mono"


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    text = svg.read_text().replace("font-family: Fira Code, monospace", f"font-family: {PNG_FONT}")
    try:
        import cairosvg  # type: ignore[import-not-found]

        cairosvg.svg2png(bytestring=text.encode(), write_to=str(png))
        return png
    except ImportError:
        pass
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png)], input=text.encode(), check=True)
        return png
    return None


async def shoot(out: Path, size: tuple[int, int], timeout: float) -> list[Path]:
    os.environ.setdefault("KUGETSU_DEMO_SPEED", "0.7")
    root = Path(tempfile.mkdtemp(prefix="kugetsu-shots-"))
    home = prepare(root, 30)
    app = KugetsuApp(home, load_config(home.config_path))
    saved: list[Path] = []
    try:
        async with app.run_test(size=size) as pilot:
            board = app.dashboard
            deadline = time.monotonic() + timeout
            while not (board.active.row_count >= 2 and board.queued.row_count and board.failed.row_count):
                if time.monotonic() > deadline:
                    raise SystemExit("the demo did not fill every pane in time")
                await pilot.pause(0.1)
            board.active.focus()
            board.active.move_cursor(row=0)
            await pilot.pause(0.3)
            saved.append(Path(app.save_screenshot("main.svg", path=str(out))))
            await pilot.press("enter")
            await pilot.pause(0.3)
            saved.append(Path(app.save_screenshot("detail.svg", path=str(out))))
            await pilot.press("escape")
            await app.shut_down()
    finally:
        store = Store(home.db_path)
        for task in store.tasks():
            if task.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(task.pid, signal.SIGKILL)
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "screenshots")
    parser.add_argument("--size", default="120x35", help="terminal size, WIDTHxHEIGHT")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for svg in asyncio.run(shoot(args.out, (width, height), args.timeout)):
        png = to_png(svg)
        print(svg, png or "(no PNG renderer: pip install cairosvg, or install rsvg-convert)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
