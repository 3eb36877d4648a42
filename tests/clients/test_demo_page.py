"""``transcription/views.py``: the browser demo page and its scripts, served with DEBUG off."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import Client

from transcription.views import STATIC_DIR


@pytest.fixture
def client(settings: object) -> Client:
    settings.DEBUG = False  # type: ignore[attr-defined]
    return Client()


def test_page_is_served_at_root_without_auth(client: Client) -> None:
    """GET / returns the demo page with its controls, scripts and a strict CSP."""
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for element in ('id="url"', 'id="api-key"', 'id="start"', 'id="stop"', 'id="download"'):
        assert element in html
    assert 'src="/static/openasr/demo.js"' in html
    assert 'data-worklet-url="/static/openasr/pcm-worklet.js"' in html
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not re.search(r"https?://", re.sub(r"<small>.*?</small>", "", html, flags=re.S))


@pytest.mark.parametrize("name", ["demo.js", "pcm-worklet.js"])
def test_scripts_are_served_with_a_javascript_content_type(client: Client, name: str) -> None:
    """The page's two scripts come from the app with text/javascript and nosniff."""
    response = client.get(f"/static/openasr/{name}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("path", ["/static/openasr/views.py", "/static/openasr/..%2fviews.py"])
def test_other_files_are_not_served(client: Client, path: str) -> None:
    """Only the allow-listed scripts are served; anything else is 404."""
    assert client.get(path).status_code == 404


def test_page_rejects_post(client: Client) -> None:
    """The page is read-only: POST / is 405."""
    assert client.post("/").status_code == 405


def test_scripts_never_put_the_key_in_the_url() -> None:
    """demo.js sends the key as the bearer subprotocol, never in a query string."""
    script = (STATIC_DIR / "demo.js").read_text()
    assert '`openasr.bearer.${key}`, "openasr"' in script
    assert "?key" not in script and "api_key=" not in script and "localStorage" not in script


WORKLET_HARNESS = """
const fs = require("fs");
const [file, rate, freq] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
let Proc; const posted = [];
class Base { constructor() { this.port = { postMessage: (m) => posted.push(m) }; } }
new Function("sampleRate", "AudioWorkletProcessor", "registerProcessor",
  fs.readFileSync(file, "utf8"))(rate, Base, (name, cls) => { Proc = cls; });
const p = new Proc({ processorOptions: { targetRate: 16000, frameMs: 100 } });
for (let t = 0; t < rate * 2; t += 128) {
  const q = [new Float32Array(128), new Float32Array(128)];
  for (let i = 0; i < 128; i++) {
    q[0][i] = q[1][i] = 0.5 * Math.sin((2 * Math.PI * freq * (t + i)) / rate);
  }
  p.process([q]);
}
p.port.onmessage({ data: "flush" });
const frames = posted.filter((m) => m.pcm).map((m) => new Int16Array(m.pcm));
const pcm = frames.flatMap((f) => Array.from(f));
const mid = pcm.slice(4000, 28000);
const rms = Math.sqrt(mid.reduce((a, v) => a + (v / 32768) ** 2, 0) / mid.length);
console.log(JSON.stringify({ n: pcm.length, rms, first: frames[0].length,
  flushed: posted.some((m) => m.flushed) }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("rate", [48000, 44100])
def test_worklet_downsamples_to_16k_without_aliasing(tmp_path: Path, rate: int) -> None:
    """pcm-worklet.js: 2 s at 44.1/48 kHz → 16 kHz 100 ms frames; 1 kHz passes, 10 kHz goes."""
    harness = tmp_path / "harness.js"
    harness.write_text(WORKLET_HARNESS)
    results = {}
    for freq in (1000, 10000):
        out = subprocess.run(
            ["node", str(harness), str(STATIC_DIR / "pcm-worklet.js"), str(rate), str(freq)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        results[freq] = json.loads(out.stdout)
    assert abs(results[1000]["n"] - 32000) < 64
    assert results[1000]["first"] == 1600 and results[1000]["flushed"]
    assert results[1000]["rms"] == pytest.approx(0.5 / 2**0.5, rel=0.02)
    assert results[10000]["rms"] < 0.005
