"""What the ``tuixp serve`` tests share: a demo store, a real server process, a real browser tab
over the websocket (the same messages textual.js sends), and the screen text out of it."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import env_with_path

START_TIMEOUT = 60.0  # seconds for `tuixp serve` to say its address
STOP_TIMEOUT = 30.0  # seconds for it to exit after SIGINT
SCREEN_TIMEOUT = 60.0  # seconds for a text to reach a tab's screen (a cold TUI start)


def make_demo_store(folder: Path) -> Path:
    """``tuixp demo`` into ``folder``: 10 trials of experiment ``demo``, one failed."""
    store = folder / "demo" / "tuixp.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "tuixp", "demo", "--store", str(store)],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return store


@dataclass
class Served:
    """A running ``tuixp serve`` process and the address it printed."""

    proc: subprocess.Popen[str]
    url: str
    out: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def port(self) -> int:
        match = re.search(r":(\d+)/", self.url)
        assert match, self.url
        return int(match.group(1))

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (what a browser on this machine opens)."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> tuple[int, str, str]:
        """SIGINT, as Ctrl-C sends; the exit code, stdout and stderr once it exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(
                f"tuixp serve did not stop within {STOP_TIMEOUT}s of SIGINT"
            ) from None
        while (line := self._lines.get(timeout=STOP_TIMEOUT)) is not None:
            self.out.append(line)
        assert self.proc.stderr is not None
        return self.proc.returncode, "".join(self.out), self.proc.stderr.read()


def server_env() -> dict[str, str]:
    """The test's environment, without a token someone set for their own server."""
    env = env_with_path()
    env.pop("TUIXP_SERVE_TOKEN", None)
    return env


def serve(store: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """Start ``tuixp serve --store STORE --port 0 ARGS`` and wait for the address it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuixp", "serve", "--store", str(store), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env or server_env(),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    out: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        out.append(line)
        if match := re.search(r" at (http://\S+)", line):
            return Served(proc, match.group(1), out, lines)
    proc.kill()
    _, err = proc.communicate(timeout=STOP_TIMEOUT)
    raise AssertionError(f"tuixp serve printed no address: {''.join(out)!r} {err!r}")


def session_pids(store: Path) -> list[int]:
    """The app processes (one per tab) serving ``store``, found in /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tuixp.serve.session" in argv and str(store).encode() in argv:
            pids.append(int(entry.name))
    return pids


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Tab:
    """One browser tab's websocket: sends what textual.js sends, and keeps the screen the app
    draws in a terminal emulator (pyte), as xterm.js does in the page."""

    def __init__(self, ws: Any, width: int = 120, height: int = 36) -> None:
        import pyte

        self.ws = ws
        self.size = (width, height)
        self.screen = pyte.Screen(width, height)
        self.stream = pyte.ByteStream(self.screen)

    async def start(self) -> None:
        width, height = self.size
        await self.ws.send_str(json.dumps(["resize", {"width": width, "height": height}]))

    async def keys(self, text: str) -> None:
        """Type ``text`` (terminal bytes: ``\\r`` is enter, ``\\x1b[15~`` F5)."""
        await self.ws.send_str(json.dumps(["stdin", text]))

    def text(self) -> str:
        return "\n".join(self.screen.display)

    async def wait_for(self, *texts: str, timeout: float = SCREEN_TIMEOUT) -> str:
        """Read the app's output until every one of ``texts`` is on the screen."""
        return await self.wait_until(lambda shown: all(t in shown for t in texts), texts, timeout)

    async def wait_until(
        self, done: Callable[[str], bool], what: object = "", timeout: float = SCREEN_TIMEOUT
    ) -> str:
        """Read the app's output until ``done(screen text)``."""
        import aiohttp

        texts = what or done
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if done(shown):
                return shown
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{texts} not on screen within {timeout}s:\n{shown}")
            try:
                message = await asyncio.wait_for(self.ws.receive(), min(left, 1.0))
            except TimeoutError:
                continue
            if message.type == aiohttp.WSMsgType.BINARY:
                self.stream.feed(message.data)
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                raise AssertionError(f"the session closed before {texts} showed:\n{shown}")


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws?width=120&height=36"
