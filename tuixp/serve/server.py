"""textual-serve's ``Server``, guarded, with URLs from the request and a bounded stop.

textual-serve (1.1.3, pinned: this subclass relies on how its ``Server`` builds its routes)
answers ``/`` with a page whose script opens ``/ws``; each websocket starts one app process
(``AppService``) running a shell command, here ``python -m tuixp.serve.session --store PATH``,
and relays the terminal both ways. What this subclass changes:

- every request (page, static files, websocket, downloads) passes ``Guard`` first;
- the page's static and websocket URLs come from the request's own Host (textual-serve writes
  its configured host and port in them, which breaks ``ssh -L 9000:127.0.0.1:8000``);
- ``?token=`` on the page's address is traded for a cookie and a redirect to the same page
  without it, so the token does not stay in the address bar;
- the server starts on its own event loop, says the URL it really listens on (``--port 0``
  picks a free one), and on SIGINT/SIGTERM closes every session (their app processes get the
  quit message; any still alive after ``SESSION_STOP_TIMEOUT`` seconds is killed) and stops.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from tuixp.errors import UsageError
from tuixp.serve.guard import Guard, cookie_name, is_unspecified

log = logging.getLogger("tuixp.serve")

SESSION_STOP_TIMEOUT = 5.0  # seconds an app process has to quit once asked
HTTP_STOP_TIMEOUT = 2.0  # seconds aiohttp gives open requests at shutdown


def session_command(store: Path) -> str:
    """The shell command each browser tab runs: the TUI on ``store``, on Textual's web driver."""
    return shlex.join([sys.executable, "-m", "tuixp.serve.session", "--store", str(store)])


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: IPv6 in brackets; every interface as this machine's name."""
    if is_unspecified(host):
        return socket.gethostname()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


class TuixpServer(Server):
    """Serves the TUI on ``store`` at ``host``:``port``; ``token`` None serves loopback only."""

    def __init__(
        self,
        store: Path,
        *,
        host: str,
        port: int,
        token: str | None,
        say: Callable[[str], None] = print,
    ) -> None:
        super().__init__(session_command(store), host=host, port=port, title=f"tuixp {store.name}")
        self.store = store
        self.guard = Guard(token)
        self.token = token
        self.say = say
        self.url: str | None = None  # the address to open, once listening
        self._sessions: set[tuple[web.WebSocketResponse, AppService]] = set()

    # -- logging: textual-serve's rich handler and logo are for its own demo -------------------
    def initialize_logging(self) -> None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tuixp serve: %(message)s"))
        for name in ("textual-serve", "tuixp.serve", "aiohttp"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.setLevel(logging.DEBUG if self.debug else logging.WARNING)
            logger.propagate = False

    async def on_startup(self, app: web.Application) -> None:
        """Nothing: the URL is said once the socket listens (``_main``)."""

    # -- the routes ----------------------------------------------------------------------------
    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guarded)
        app.on_shutdown.append(self._close_sessions)
        return app

    @web.middleware
    async def _guarded(self, request: web.Request, handler: Any) -> web.StreamResponse:
        problem = self.guard.refusal(
            host=request.headers.get("Host"),
            origin=request.headers.get("Origin"),
            query_token=request.query.get("token"),
            cookie_token=request.cookies.get(cookie_name(request.headers.get("Host", ""))),
            authorization=request.headers.get("Authorization"),
        )
        if problem is not None:
            log.warning("%s %s: %s", request.method, request.path, problem)
            return web.Response(status=403, text=problem + "\n")
        response: web.StreamResponse = await handler(request)
        return response

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        """The page; ``?token=`` (already checked) becomes a cookie and a redirect without it."""
        host = request.headers["Host"]  # the guard refused a request without one
        if self.token is not None and "token" in request.query:
            query = {k: v for k, v in request.query.items() if k != "token"}
            location = request.rel_url.with_query(query)
            redirect = web.HTTPSeeOther(location=str(location))
            redirect.set_cookie(
                cookie_name(host),
                self.token,
                httponly=True,
                samesite="Strict",
                path="/",
            )
            return redirect
        base = f"{request.scheme}://{host}"
        ws_scheme = "wss" if request.scheme == "https" else "ws"
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{ws_scheme}://{host}{request.app.router['websocket'].url_for()}",
            "config": {"static": {"url": f"{base}/static/"}},
            "application": {"name": self.title},
        }
        response: web.StreamResponse = aiohttp_jinja2.render_template(
            "app_index.html", request, context
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler, keeping each session so a stop can close it."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        await websocket.prepare(request)
        service = AppService(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,  # type: ignore[arg-type]  # returns a bool, unused
            download_manager=self.download_manager,
            debug=self.debug,
        )
        entry = (websocket, service)
        self._sessions.add(entry)
        try:
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            pass
        except Exception as error:  # a broken message or a dead process ends this tab only
            log.warning("a session ended: %s", error)
        finally:
            await self._stop_service(service)
            self._sessions.discard(entry)
            if not websocket.closed:
                await websocket.close()
        return websocket

    async def _stop_service(self, service: AppService) -> None:
        """Ask the app process to quit; kill it if it is still there after the timeout."""
        try:
            await asyncio.wait_for(service.stop(), SESSION_STOP_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.warning("an app process did not quit (%s); killing it", exc or "timeout")
        process = getattr(service, "_process", None)  # textual-serve 1.1.3 keeps it there
        if process is not None and process.returncode is None:
            process.kill()
            try:
                await asyncio.wait_for(process.wait(), SESSION_STOP_TIMEOUT)
            except TimeoutError:
                log.warning("app process %s did not die", process.pid)

    async def _close_sessions(self, app: web.Application) -> None:
        sessions = list(self._sessions)
        await asyncio.gather(*(ws.close() for ws, _ in sessions), return_exceptions=True)
        await asyncio.gather(*(self._stop_service(s) for _, s in sessions), return_exceptions=True)

    # -- running -------------------------------------------------------------------------------
    def serve(self, debug: bool = False) -> None:
        """Serve until SIGINT or SIGTERM (Ctrl-C), then close every session and return."""
        self.debug = debug
        self.initialize_logging()
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app = await self._make_app()
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=HTTP_STOP_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            try:
                await site.start()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise UsageError(
                        f"port {self.port} on {self.host} is in use; choose another with --port"
                    ) from None
                raise UsageError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
            port = runner.addresses[0][1]
            self.url = f"http://{url_host(self.host)}:{port}/"
            if self.token is not None:
                self.url += f"?token={self.token}"
            self.say(f"tuixp serve: the TUI on {self.store} at {self.url}")
            self.say("Press Ctrl+C to stop.")
            await stop.wait()
            self.say(f"tuixp serve: stopping ({len(self._sessions)} open sessions)")
            await self._close_sessions(app)  # before aiohttp waits on their open websockets
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await runner.cleanup()
