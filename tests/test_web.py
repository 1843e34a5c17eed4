"""`kugetsu web`: the real server, a real headless Chromium (Debian's, driven by its
chromedriver over WebDriver's HTTP API), and the real dashboard processes it starts.

The terminal in the page is drawn on a canvas, so the dashboard's text is read from what
the page's websocket received (a script added before the page's own records it); what a
key does is read from the engine (`kugetsu status --json`). Network: 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from tests.helpers.harness import Kugetsu, script, wait_until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
BROWSER_WAIT = 60.0  # a browser, a server and a dashboard on a busy two-core machine

# Keeps what the page's websockets receive, as text, where WebDriver can read it.
RECORD_FRAMES = """
(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  const decoder = new TextDecoder();
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") window.__frames.push(e.data);
      else if (e.data instanceof ArrayBuffer) window.__frames.push(decoder.decode(e.data));
      else if (e.data && e.data.text) e.data.text().then((t) => window.__frames.push(t));
    });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[@-_][0-9;]*|[\x00-\x08\x0b-\x1f]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class WebDriver:
    """The few WebDriver commands these tests need, over plain HTTP."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.session = ""

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            reply = json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()
        value = reply.get("value")
        if isinstance(value, dict) and "error" in value:
            raise RuntimeError(
                f"WebDriver {method} {path}: {value['error']}: {value.get('message', '')[:300]}"
            )
        return value

    def s(self, method: str, path: str, body: Any = None) -> Any:
        return self.call(method, f"/session/{self.session}{path}", body)

    def start(self, profile: Path) -> None:
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            f"--user-data-dir={profile}",
        ]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        self.cdp("Page.addScriptToEvaluateOnNewDocument", source=RECORD_FRAMES)

    def cdp(self, cmd: str, **params: Any) -> Any:
        return self.s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def open(self, url: str) -> None:
        self.s("POST", "/url", {"url": url})

    def script(self, source: str) -> Any:
        return self.s("POST", "/execute/sync", {"script": source, "args": []})

    def received(self) -> str:
        """What the page's websockets brought, as screen text without escape sequences."""
        return ESCAPES.sub("", "".join(self.script("return window.__frames || []")))

    def press(self, key: str) -> None:
        self.script("const t = document.querySelector('.xterm-helper-textarea'); if (t) t.focus();")
        keys = [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        self.s("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": keys}]})

    def new_tab(self) -> str:
        handle: str = self.s("POST", "/window/new", {"type": "tab"})["handle"]
        self.s("POST", "/window", {"handle": handle})
        return handle

    def tab(self) -> str:
        handle: str = self.s("GET", "/window")
        return handle

    def switch(self, handle: str) -> None:
        self.s("POST", "/window", {"handle": handle})

    def close_tab(self, then: str) -> None:
        """Close the current tab and go to `then`."""
        self.s("DELETE", "/window")
        self.switch(then)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.s("GET", "/screenshot"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    port = free_port()
    log = open(tmp_path / "chromedriver.log", "wb")  # noqa: SIM115 - closed at teardown
    driver = subprocess.Popen(
        [str(CHROMEDRIVER), f"--port={port}", "--allowed-ips=127.0.0.1"], stdout=log, stderr=log
    )
    wd = WebDriver(port)
    try:
        wait_until(lambda: _answers(port), "chromedriver to listen", timeout=BROWSER_WAIT)
        with tempfile.TemporaryDirectory(prefix="kugetsu-chromium-") as profile:
            wd.start(Path(profile))
            try:
                yield wd
            finally:
                with contextlib.suppress(Exception):
                    wd.call("DELETE", f"/session/{wd.session}")
    finally:
        driver.terminate()
        driver.wait(10)
        log.close()


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def start_web(kg: Kugetsu, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`kugetsu web --port 0`, and the URL (with its token) it printed once listening."""
    proc = kg.popen("web", "--port", "0", *args)

    def url() -> str | None:
        if proc.poll() is not None:
            pytest.fail(f"kugetsu web exited with {proc.returncode}: {kg.output(proc)[1]}")
        found = re.search(r"http://\S+", kg.output(proc)[0])
        return found.group(0) if found else None

    address: str = wait_until(url, "kugetsu web to listen", timeout=BROWSER_WAIT)
    return proc, address


def dashboards(server: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The `kugetsu tui` processes the server started, from the process table."""
    found = []
    for child in psutil.Process(server.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.cmdline()[-1:] == ["tui"]:
                found.append(child)
    return found


def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.read().decode("utf-8", "replace"), dict(reply.getheaders())
    finally:
        conn.close()


# --- without a browser -------------------------------------------------------------------


def test_without_the_token_everything_is_401_and_with_it_the_page_and_a_cookie(kg: Kugetsu) -> None:
    server, url = start_web(kg)
    token = url.split("token=", 1)[1]
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    for path, headers in (
        ("/", {}),
        ("/?token=" + "x" * len(token), {}),
        ("/ws", upgrade),
        ("/static/js/textual.js", {}),
        ("/", {"Cookie": f"kugetsu_web={token}"}),  # the token is not the cookie
    ):
        status, body, _ = get(url, path, headers)
        assert (status, body) == (401, "401: a token is needed\n"), path
    assert not dashboards(server), "a refused websocket started a dashboard"

    status, body, headers = get(url, f"/?token={token}")
    assert status == 200 and "textual-terminal" in body
    assert "fonts.googleapis.com" not in body
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, body, _ = get(url, "/static/js/textual.js", {"Cookie": cookie.split(";")[0]})
    assert status == 200 and "WebSocket" in body
    # With the cookie, but from another site's page: refused before any dashboard starts.
    status, _, _ = get(url, "/ws", {**upgrade, "Cookie": cookie.split(";")[0], "Origin": "http://evil.test"})
    assert status == 403 and not dashboards(server)
    listening = [c.laddr for c in psutil.Process(server.pid).net_connections() if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    # The token was printed once, at start, and is nowhere else in what the server wrote.
    out, err = kg.output(server)
    assert out.count(token) == 1 and token not in err


def test_a_token_file_is_read_and_the_printed_url_does_not_show_it(kg: Kugetsu, tmp_path: Path) -> None:
    token_file = tmp_path / "web-token"
    token_file.write_text("a-token-from-a-file-0123456789\n")
    server, url = start_web(kg, "--token-file", str(token_file))
    assert "a-token-from-a-file" not in kg.output(server)[0]
    assert get(url, "/")[0] == 401
    assert get(url, "/?token=a-token-from-a-file-0123456789")[0] == 200


def test_listening_beyond_loopback_needs_a_token_file(kg: Kugetsu) -> None:
    done = kg.cli("web", "--host", "0.0.0.0", timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--host 0.0.0.0 is not a loopback address" in done.stderr
    assert "--token-file" in done.stderr and "Traceback" not in done.stderr


def test_a_short_or_missing_token_file_is_refused_in_one_line(kg: Kugetsu, tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    for path, expected in ((short, "at least 16"), (tmp_path / "missing", "no such file")):
        done = kg.cli("web", "--token-file", str(path), timeout=30)
        assert done.returncode == 2 and expected in done.stderr and done.stderr.count("\n") == 1


# --- in a browser --------------------------------------------------------------------------


@needs_chromium
def test_the_browser_shows_the_dashboard_and_its_keys_act(kg: Kugetsu, browser: WebDriver) -> None:
    task = kg.add("the browser finds this prompt")
    kg.main("hold", str(task))
    running = kg.add(script(("sleep", 60)))
    server, url = start_web(kg)
    browser.open(url)
    wait_until(
        lambda: "the browser finds this prompt" in browser.received(),
        "the dashboard in the browser",
        timeout=BROWSER_WAIT,
    )
    assert "browser 127.0.0.1" in browser.received()  # the header says it is a browser session
    assert "token=" not in browser.script("return window.location.href")
    (session,) = dashboards(server)
    assert session.environ().get("KUGETSU_BROWSER") == "127.0.0.1"

    # The browser session's dashboard supervises; its agents do not inherit textual-serve's driver.
    kg.wait_state(running, "running", timeout=BROWSER_WAIT)
    (agent,) = kg.agent_processes()
    assert "TEXTUAL_DRIVER" not in agent.environ()

    cap = kg.status()["cap"]
    browser.press("+")
    wait_until(
        lambda: kg.status()["cap"] == cap + 1, "the cap raised by + in the browser", timeout=BROWSER_WAIT
    )
    png = browser.screenshot()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


@needs_chromium
def test_max_sessions_holds_and_closing_a_tab_ends_its_process(kg: Kugetsu, browser: WebDriver) -> None:
    kg.write_config(web={"max_sessions": 1})
    server, url = start_web(kg)
    first_tab = browser.tab()
    browser.open(url)
    wait_until(lambda: len(dashboards(server)) == 1, "the first session's dashboard", timeout=BROWSER_WAIT)
    (first,) = dashboards(server)
    wait_until(lambda: "live" in browser.received(), "the first dashboard drawn", timeout=BROWSER_WAIT)

    browser.new_tab()
    browser.open(url)
    text = browser.script("return document.body.innerText")
    assert "too many browser sessions" in text and "max_sessions = 1" in text
    assert dashboards(server) == [first]

    spare = browser.tab()
    browser.switch(first_tab)
    browser.close_tab(then=spare)
    wait_until(lambda: not _alive(first), "the closed tab's dashboard process to end", timeout=BROWSER_WAIT)
    assert dashboards(server) == []

    browser.open(url)  # the slot is free again
    wait_until(lambda: len(dashboards(server)) == 1, "a new session", timeout=BROWSER_WAIT)
    (second,) = dashboards(server)
    assert kg.stop_supervisor(server, timeout=BROWSER_WAIT) == 0
    assert not _alive(second), "a dashboard outlived the server"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
