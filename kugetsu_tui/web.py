"""`kugetsu web`: the dashboard in a browser, behind a token, served by textual-serve.

Each browser session (one websocket) runs its own `kugetsu tui` process on the same home,
which attaches to the home's supervisor or runs one, exactly as in a terminal; the page
and its websocket only carry the screen and the keys. Closing the tab ends that process.

Every request needs the token: `?token=…` in the address, or the cookie the first
authenticated response sets (HttpOnly, SameSite=Strict, so the websocket and the assets
work and no other site can use it). Anything else gets 401 and nothing more: not the
page, not the websocket, not a static file. The token is compared in constant time and
never logged (aiohttp's access log is off: it would write query strings).

Only this module imports textual-serve and aiohttp, and only `kugetsu web` imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from textual_serve.app_service import AppService
from textual_serve.server import Server

from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import UsageError
from kugetsu_tui.present import BROWSER_ENV

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
COOKIE = "kugetsu_web"
STOP_WAIT = 20.0  # a dashboard that supervises waits up to 15 s for its loop to stop
TEXTUAL_SERVE_PAGE = Path(Server.__init__.__code__.co_filename).with_name("templates") / "app_index.html"
# Take the token out of the address bar once the cookie holds it (it stays out of history).
FORGET_TOKEN = """<script>
      (() => { const u = new URL(window.location.href);
        if (u.searchParams.has("token")) { u.searchParams.delete("token");
          history.replaceState(null, "", u.pathname + u.search); } })();
    </script>
  </head>"""

log = logging.getLogger("kugetsu.web")


@dataclass(frozen=True, slots=True)
class WebOptions:
    host: str
    port: int
    token: str
    token_file: Path | None  # None: the token was made for this run (and is printed)
    max_sessions: int


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"token file {path}: no such file (expected a file holding the token)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"token file {path}: cannot read: {err}") from None
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < 16 or not token.isprintable():
        raise UsageError(f"token file {path}: expected a token of at least 16 printable characters")
    return token


def web_options(config: Config, host: str | None, port: int | None, token_file: str | None) -> WebOptions:
    """The command line over `[web]` in the config; refuses a bind it cannot guard."""
    host = host or DEFAULT_HOST
    if token_file:
        path: Path | None = Path(token_file).expanduser()
    elif config.web_token_file:
        path = Path(config.web_token_file).expanduser()
        if not path.is_absolute() and config.path is not None:
            path = config.path.parent / path
    else:
        path = None
    if path is None and not is_loopback(host):
        raise UsageError(
            f"--host {host} is not a loopback address: give --token-file FILE (or [web] token_file) "
            "to listen on it, or leave --host out for 127.0.0.1"
        )
    token = read_token(path) if path is not None else secrets.token_urlsafe(24)
    return WebOptions(host, DEFAULT_PORT if port is None else port, token, path, config.web_max_sessions)


def dashboard_command(home: Home, config_path: Path) -> str:
    """The shell line textual-serve runs per session: `kugetsu tui` on this home."""
    argv = [
        sys.executable,
        "-m",
        "kugetsu_tui",
        "--home",
        str(home.root),
        "--config",
        str(config_path),
        "tui",
    ]
    return "exec " + shlex.join(argv)


def page_template() -> str:
    """textual-serve's page, without its call to a font server and with FORGET_TOKEN."""
    text = TEXTUAL_SERVE_PAGE.read_text(encoding="utf-8")
    text = re.sub(r"<link[^>]*fonts\.googleapis\.com[^>]*>", "", text)
    return text.replace("</head>", FORGET_TOKEN, 1)


def full_page(max_sessions: int) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>kugetsu: too many sessions</title>"
        "</head><body style='font-family: monospace; background: #0c181f; color: #eee; padding: 2em'>"
        "<h1>kugetsu: too many browser sessions</h1>"
        f"<p>All {max_sessions} sessions are in use ([web] max_sessions = {max_sessions}); each one "
        "runs a dashboard process.</p><p>Close another kugetsu tab, then reload this page.</p>"
        "</body></html>"
    )


class BrowserSession(AppService):
    """One browser tab's dashboard process; it knows it is a browser one (the header says so)."""

    def __init__(self, command: str, peer: str, server: Server) -> None:
        super().__init__(
            command,
            write_bytes=self._write_bytes,
            write_str=self._write_str,
            close=self._close,
            download_manager=server.download_manager,
        )
        self.peer = peer
        self.websocket = web.WebSocketResponse(heartbeat=15)

    async def _write_bytes(self, data: bytes) -> None:
        await self.websocket.send_bytes(data)

    async def _write_str(self, data: str) -> None:
        await self.websocket.send_str(data)

    async def _close(self) -> None:
        await self.websocket.close()

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        environment[BROWSER_ENV] = self.peer
        return environment

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def end(self) -> None:
        """Ask the dashboard to quit; end its process if it has not within STOP_WAIT."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stop(), STOP_WAIT)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


class DashboardServer(Server):
    """textual-serve's Server with a token in front, a bound on sessions and no logging of URLs."""

    def __init__(self, command: str, options: WebOptions) -> None:
        super().__init__(command, host=options.host, port=options.port, title="kugetsu")
        self.options = options
        self._token = options.token.encode()
        self._cookie = hmac.new(self._token, b"kugetsu web cookie", hashlib.sha256).hexdigest()
        self.sessions: set[BrowserSession] = set()

    # --- the guard ----------------------------------------------------------------------

    def _allowed(self, request: web.Request) -> tuple[bool, bool]:
        """(allowed, by the query's token); both comparisons in constant time."""
        given = request.query.get("token", "").encode()
        by_query = hmac.compare_digest(given, self._token)
        by_cookie = hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._cookie.encode())
        return by_query or by_cookie, by_query

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        allowed, by_query = self._allowed(request)
        if not allowed:
            return web.Response(status=401, text="401: a token is needed\n")
        response = await handler(request)
        if by_query and not response.prepared:
            response.set_cookie(
                COOKIE,
                self._cookie,
                httponly=True,
                samesite="Strict",
                path="/",
                secure=request.secure or None,
            )
        return response

    # --- the app ------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard])
        aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({"app_index.html": page_template()}))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.get("/ws", self.handle_websocket, name="websocket"),
                web.static("/static", self.statics_path, name="static"),
            ]
        )
        app.on_shutdown.append(self.on_shutdown)
        return app

    def full(self) -> bool:
        return len(self.sessions) >= self.options.max_sessions

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        if self.full():
            return web.Response(
                status=503, text=full_page(self.options.max_sessions), content_type="text/html"
            )
        font_size = request.query.get("fontsize", "16")
        # From the address the browser used, not the one we bound (0.0.0.0 is no address to open).
        scheme = "wss" if request.secure else "ws"
        context = {
            "font_size": int(font_size) if font_size.isdigit() else 16,
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text="403: the page of another site\n")
        if self.full():
            return web.Response(status=503, text="503: too many browser sessions\n")
        width = request.query.get("width", "80")
        height = request.query.get("height", "24")
        session = BrowserSession(self.command, request.remote or "?", self)
        self.sessions.add(session)
        try:
            await session.websocket.prepare(request)
            await session.start(
                int(width) if width.isdigit() else 80, int(height) if height.isdigit() else 24
            )
            await self._process_messages(session.websocket, session)
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as err:  # a broken message from the page ends its session only
            log.warning("browser session ended: %s", type(err).__name__)
        finally:
            await session.end()
            self.sessions.discard(session)
            await session.websocket.close()
        return session.websocket

    async def on_shutdown(self, app: web.Application) -> None:
        await asyncio.gather(*(s.end() for s in list(self.sessions)), return_exceptions=True)
        for session in list(self.sessions):
            await session.websocket.close()

    # --- serving ------------------------------------------------------------------------

    async def serve_until_stopped(self, announce: bool = True) -> None:
        runner = web.AppRunner(await self._make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise UsageError(
                f"cannot listen on {self.options.host}:{self.options.port}: {err.strerror or err} "
                "(expected a free port: --port N)"
            ) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        if announce:
            self.announce(site)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    def announce(self, site: web.TCPSite) -> None:
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.options.port
        host = self.options.host
        shown = f"[{host}]" if ":" in host else host
        if self.options.token_file is None:
            where = f"http://{shown}:{port}/?token={self.options.token}"
        else:
            where = f"http://{shown}:{port}/?token=<the token in {printable(str(self.options.token_file))}>"
        print(f"kugetsu web: the dashboard on {where}", flush=True)
        print(
            f"kugetsu web: at most {self.options.max_sessions} browser sessions; Ctrl+C stops serving",
            flush=True,
        )


def run_web(home: Home, config: Config, config_path: Path, options: WebOptions) -> int:
    """Serve until SIGINT/SIGTERM/SIGHUP; every session's dashboard ends with it."""
    logging.basicConfig(level=logging.WARNING, format="kugetsu web: %(message)s")
    os.environ.pop(BROWSER_ENV, None)  # only each session's own process carries it
    server = DashboardServer(dashboard_command(home, config_path), options)
    asyncio.run(server.serve_until_stopped())
    return 0


__all__ = ["DEFAULT_PORT", "DashboardServer", "WebOptions", "run_web", "web_options"]
