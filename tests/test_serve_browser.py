"""``tuixp serve`` in a real headless Chromium (Debian's ``chromium``), driven over the DevTools
protocol directly (a websocket; no driver to match to the browser's version).

The browser opens the address ``tuixp serve --token`` printed (the token becomes a cookie), the
page's script opens the websocket, the TUI draws the demo store's trial table, ``enter`` opens
the trial. What is on screen is read from the page's xterm.js terminal (the canvas it paints is
drawn from that buffer); the screenshot is the browser's own PNG. With
``TUIXP_UPDATE_SCREENSHOTS=1`` it is also written to screenshots/serve-browser.png (the README's).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ROOT
from tests.serve_helpers import make_demo_store, serve

CHROMIUM = os.environ.get("TUIXP_CHROMIUM") or shutil.which("chromium")
BROWSER_START_TIMEOUT = 30.0  # seconds for Chromium to open its DevTools port
CALL_TIMEOUT = 30.0  # seconds for one DevTools call
SCREEN_TIMEOUT = 60.0  # seconds for a text to be on the page's terminal

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium to test tuixp serve in (apt-get install chromium; .ci/run does)",
    ),
]

# Before the page's script runs: keep the xterm.js Terminal that textual.js creates (it assigns
# `this.terminal = new Terminal(...)`; a setter on Object.prototype sees that assignment).
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {
  configurable: true,
  set(value) {
    Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true,
                                             enumerable: true});
    if (value && value.buffer && value.buffer.active) { window.__tuixpTerminal = value; }
  },
});
"""
# The rows on the terminal's screen, as text.
SCREEN = """(() => {
  const t = window.__tuixpTerminal;
  if (!t) return '';
  const b = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    rows.push(line ? line.translateToString(true) : '');
  }
  return rows.join('\\n');
})()"""


class DevTools:
    """One page of the browser, over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        deadline = time.monotonic() + CALL_TIMEOUT
        while True:  # events arrive in between; this waits for the answer to this call
            message = await asyncio.wait_for(self.ws.receive_json(), deadline - time.monotonic())
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for_screen(self, *texts: str) -> str:
        deadline = time.monotonic() + SCREEN_TIMEOUT
        screen = ""
        while time.monotonic() < deadline:
            screen = await self.evaluate(SCREEN) or ""
            if all(t in screen for t in texts):
                return screen
            await asyncio.sleep(0.2)
        raise AssertionError(f"{texts} not on the page within {SCREEN_TIMEOUT}s:\n{screen}")

    async def press(self, key: str, code: int, text: str) -> None:
        for kind in ("keyDown", "keyUp"):
            extra = {"text": text} if kind == "keyDown" else {}
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=code,
                **extra,
            )

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
        path.write_bytes(data)
        return data


def start_chromium(profile: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Headless Chromium on an empty page; the DevTools port it chose."""
    assert CHROMIUM is not None
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "--window-size=1280,720",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + BROWSER_START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists() and (lines := port_file.read_text().split()):
            return proc, int(lines[0])
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=BROWSER_START_TIMEOUT)
    raise AssertionError(f"chromium opened no DevTools port within {BROWSER_START_TIMEOUT}s")


def test_the_tui_in_a_real_browser(tmp_path: Path) -> None:
    store = make_demo_store(tmp_path)
    served = serve(store, "--token", "browser-test-token-0123456789")
    browser, port = start_chromium(tmp_path / "profile")
    shot = tmp_path / "serve-browser.png"

    async def drive() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tab = DevTools(ws)
                await tab.call("Page.enable")
                await tab.call("Page.addScriptToEvaluateOnNewDocument", source=KEEP_TERMINAL)
                await tab.call("Page.navigate", url=served.url)  # ...?token=...
                # The trial table of the demo store: the experiment, its counts, the first and
                # last trials' rows (so the whole window has loaded).
                await tab.wait_for_screen(
                    "demo", "10 trials", "10    ✓ ok", " 1    ✓ ok", "✗ failed"
                )
                # The token went into a cookie; the address bar no longer shows it.
                assert await tab.evaluate("location.href") == served.base + "/"
                await asyncio.sleep(0.5)  # let the canvas paint the last frame
                png = await tab.screenshot(shot)
                assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
                # A key press: enter opens the highlighted trial (the newest, #10).
                await tab.evaluate("window.__tuixpTerminal.focus()")
                await tab.press("Enter", 13, "\r")
                detail = await tab.wait_for_screen("demo #10", "1 Overview", "Parameters")
                assert "lr        0.3" in detail, detail
                await tab.screenshot(tmp_path / "serve-browser-detail.png")

    try:
        asyncio.run(drive())
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=BROWSER_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(timeout=BROWSER_START_TIMEOUT)
        code, out, err = served.stop()
    assert code == 0, (out, err)
    if os.environ.get("TUIXP_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "screenshots" / "serve-browser.png")
