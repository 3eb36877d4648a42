"""End to end: the browser demo page in headless Chromium (fake microphone playing generated
speech) against a real server with the real model, driven over the DevTools protocol."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.clients.conftest import API_KEY, SpeechFile
from tests.support.server import REPO, Server
from tests.support.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"
MAX_WER = 0.2  # the browser path resamples twice (file → 48 kHz device → 16 kHz worklet)


class DevTools:
    """A minimal Chrome DevTools Protocol client: ``call`` a method, get its result."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def click(self, selector: str) -> None:
        """A real mouse click (a user gesture, as the AudioContext autoplay rules want)."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )


@asynccontextmanager
async def chromium(audio_file: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium whose microphone plays ``audio_file`` once; yields a page session."""
    profile = Path(tempfile.mkdtemp(prefix="openasr-chromium-"))
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={audio_file}%noloop",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--window-size=1000,800",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def wait_for(devtools: DevTools, expression: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await devtools.evaluate(expression)
        if value:
            return value
        await asyncio.sleep(0.5)
    raise TimeoutError(f"not true after {timeout} s: {expression}")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
async def test_browser_page_shows_live_captions(
    asr_server: Server, speech_file: SpeechFile
) -> None:
    """The page captures the (fake) microphone, streams it with the key as subprotocol, and
    shows the spoken words as captions; stop gives the final transcript for download."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with chromium(speech_file.path) as page:
        await page.call("Page.enable")
        await page.call("Page.navigate", url=asr_server.http + "/")
        await wait_for(page, "document.readyState === 'complete' && !!window.openasrDemo", 30)
        await page.evaluate(f"document.getElementById('api-key').value = {json.dumps(API_KEY)}")
        await page.click("#start")
        await wait_for(page, "window.openasrDemo.configured", 30)
        # The fake microphone plays the file in real time; the last window follows on stop.
        seconds = speech_file.composition.duration_ms / 1000
        await wait_for(page, "document.getElementById('final').textContent.length > 20", 60)
        live = await page.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "browser-demo-live.png").write_bytes(base64.b64decode(live["data"]))
        await asyncio.sleep(max(0.0, seconds - 5))
        await wait_for(
            page,
            "parseFloat(document.getElementById('level-text').textContent) < -50 || "
            "document.getElementById('level-text').textContent === 'silent'",
            30,
        )
        await page.click("#stop")
        final = await wait_for(page, "window.openasrDemo.finalTranscript", 60)
        captions = await page.evaluate("document.getElementById('final').textContent")
        error = await page.evaluate(
            "(() => { const e = document.getElementById('error'); "
            "return e.hidden ? '' : e.textContent; })()"
        )
        downloadable = await page.evaluate("!document.getElementById('download').disabled")
        shot = await page.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "browser-demo.png").write_bytes(base64.b64decode(shot["data"]))
    assert error == ""
    assert downloadable
    reference = speech_file.composition.text
    assert wer(reference, captions) <= MAX_WER, captions
    assert wer(reference, final) <= MAX_WER, final
