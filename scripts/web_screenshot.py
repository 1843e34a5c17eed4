"""Regenerate screenshots/web.png: the dashboard of `kugetsu demo` as a browser shows it.

Makes a demo sandbox, starts `kugetsu web` on it (127.0.0.1, a free port, a fresh token),
opens the printed address in Debian's headless Chromium through chromedriver's WebDriver
HTTP API, waits until the demo has tasks running, queued and failed, and saves the page.

    python scripts/web_screenshot.py [--out screenshots/web.png] [--size 1400x860]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kugetsu_tui.demo import prepare
from kugetsu_tui.engine.store import Store

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def until(condition: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"web_screenshot: timed out waiting for {what}")
        time.sleep(0.2)
    return value


def webdriver(port: int, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        value = json.loads(conn.getresponse().read() or b"{}").get("value")
    finally:
        conn.close()
    if isinstance(value, dict) and "error" in value:
        raise SystemExit(f"web_screenshot: WebDriver {path}: {value['error']}: {value.get('message')}")
    return value


def counts(home_db: Path) -> dict[str, int]:
    store = Store(home_db)
    try:
        found: dict[str, int] = {}
        for task in store.tasks():
            found[str(task.state)] = found.get(str(task.state), 0) + 1
        return found
    finally:
        store.close()


def shoot(out: Path, size: tuple[int, int], timeout: float) -> None:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        raise SystemExit(
            "web_screenshot: needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        )
    root = Path(tempfile.mkdtemp(prefix="kugetsu-web-shot-"))
    env = {**os.environ, "KUGETSU_DEMO_SPEED": os.environ.get("KUGETSU_DEMO_SPEED", "0.7")}
    home = prepare(root, 30)
    server = subprocess.Popen(
        [sys.executable, "-m", "kugetsu_tui", "--home", str(home.root), "web", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    driver_port = free_port()
    driver = subprocess.Popen(
        [chromedriver, f"--port={driver_port}", "--allowed-ips=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    session = ""
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://\S+", line)
        if not found:
            raise SystemExit(f"web_screenshot: kugetsu web did not start: {line!r}")
        url = found.group(0)
        until(lambda: _answers(driver_port), "chromedriver", timeout)
        profile = root / "chromium-profile"
        args = [*CHROME_FLAGS, f"--window-size={size[0]},{size[1]}", f"--user-data-dir={profile}"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}
        session = webdriver(driver_port, "POST", "/session", {"capabilities": {"alwaysMatch": caps}})[
            "sessionId"
        ]
        webdriver(driver_port, "POST", f"/session/{session}/url", {"url": url + "&fontsize=14"})

        def busy() -> bool:
            n = counts(home.db_path)
            return n.get("running", 0) >= 2 and n.get("queued", 0) > 0 and n.get("failed", 0) > 0

        until(busy, "the demo to have tasks running, queued and failed", timeout)
        # As if clicked: a terminal without focus shows no key hints in its footer.
        focus = "document.querySelector('.xterm-helper-textarea').focus()"
        webdriver(driver_port, "POST", f"/session/{session}/execute/sync", {"script": focus, "args": []})
        time.sleep(1.5)  # one more refresh of the dashboard after the last change we waited for
        png = base64.b64decode(webdriver(driver_port, "GET", f"/session/{session}/screenshot"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
        print(out)
    finally:
        if session:
            with contextlib.suppress(Exception, SystemExit):
                webdriver(driver_port, "DELETE", f"/session/{session}")
        driver.terminate()
        server.send_signal(signal.SIGTERM)
        for proc in (driver, server):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        store = Store(home.db_path)
        for task in store.tasks():
            if task.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(task.pid, signal.SIGKILL)
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    default = Path(__file__).resolve().parent.parent / "screenshots" / "web.png"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--size", default="1400x860", help="browser window, WIDTHxHEIGHT pixels")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    shoot(args.out, (width, height), args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
