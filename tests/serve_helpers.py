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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import env_with_path

START_TIMEOUT = 60.0  # seconds for `tuixp serve` to say its address
STOP_TIMEOUT = 30.0  # seconds for it to exit after SIGINT
SCREEN_TIMEOUT = 60.0  # seconds for a text to reach a tab's screen (a cold TUI start)

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: title, hyperlinks
    r"|\x1b[P^_X].*?\x1b\\"  # DCS and the like
    r"|\x1b[@-Z\\-_]"  # two-character escapes
)


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


def screen_text(data: bytes) -> str:
    """The characters a terminal stream writes, escapes removed (enough to find words in)."""
    return _ESCAPES.sub("", data.decode("utf-8", "replace"))


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
    """One browser tab's websocket: sends what textual.js sends, keeps what the app draws."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.data = b""
        self.mark = 0

    async def start(self, width: int = 120, height: int = 36) -> None:
        await self.ws.send_str(json.dumps(["resize", {"width": width, "height": height}]))

    async def keys(self, text: str) -> None:
        """Type ``text`` (terminal bytes: ``\\r`` is enter, ``\\x1b[15~`` F5)."""
        self.mark = len(self.data)  # wait_for looks only at what is drawn from now on
        await self.ws.send_str(json.dumps(["stdin", text]))

    async def wait_for(self, *texts: str, timeout: float = SCREEN_TIMEOUT) -> str:
        """Read the app's output until every one of ``texts`` was drawn since the last keys."""
        import aiohttp

        deadline = time.monotonic() + timeout
        while True:
            shown = screen_text(self.data[self.mark :])
            if all(t in shown for t in texts):
                return shown
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{texts} not on screen within {timeout}s: {shown[-3000:]!r}")
            try:
                message = await asyncio.wait_for(self.ws.receive(), min(left, 1.0))
            except TimeoutError:
                continue
            if message.type == aiohttp.WSMsgType.BINARY:
                self.data += message.data
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                raise AssertionError(f"the session closed before {texts} showed: {shown[-3000:]!r}")


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws?width=120&height=36"
