// OpenASR browser demo: microphone → AudioWorklet (16 kHz PCM s16le) → WebSocket → captions.
//
// Protocol: PROTOCOL.md (speech.config → ack, binary audio, speech.hypothesis / speech.phrase /
// speech.checkpoint / speech.backpressure / speech.error, speech.end → EndOfStream + close 1000).
// Auth: browsers cannot set headers on a WebSocket, so the key travels as the subprotocol
// "openasr.bearer.<key>" next to "openasr" (which the server echoes). Never in the query string:
// URLs end up in proxy and server logs.
"use strict";

(() => {
  const TARGET_RATE_HZ = 16000;
  const FRAME_MS = 100;
  const MAX_QUEUED_FRAMES = 100; // audio captured before the ack arrives (10 s), then dropped
  const KEY_STORAGE = "openasr.apiKey";
  const WORKLET_URL = document.body.dataset.workletUrl;

  const $ = (id) => document.getElementById(id);
  const ui = {
    url: $("url"),
    key: $("api-key"),
    remember: $("remember-key"),
    start: $("start"),
    stop: $("stop"),
    download: $("download"),
    clear: $("clear"),
    status: $("status"),
    error: $("error"),
    finalText: $("final"),
    interim: $("interim"),
    meter: $("level-bar"),
    levelText: $("level-text"),
    window: $("window"),
  };

  const state = {
    ws: null,
    context: null,
    stream: null,
    node: null,
    configured: false,
    queue: [],
    phrases: [],
    finalTranscript: null,
    sessionId: null,
    stopping: false,
  };
  window.openasrDemo = state; // for debugging and the end-to-end test

  // --- settings ---

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ui.url.value = `${scheme}//${location.host}/transcribe`;
  const savedKey = sessionStorage.getItem(KEY_STORAGE);
  if (savedKey) {
    ui.key.value = savedKey;
    ui.remember.checked = true;
  }
  ui.remember.addEventListener("change", () => {
    if (!ui.remember.checked) sessionStorage.removeItem(KEY_STORAGE);
  });

  // --- display ---

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = !text;
  }

  function setRunning(running) {
    ui.start.disabled = running;
    ui.stop.disabled = !running;
    ui.url.disabled = running;
    ui.key.disabled = running;
  }

  function appendPhrase(text) {
    const span = document.createElement("span");
    span.className = "phrase";
    span.textContent = (ui.finalText.childNodes.length ? " " : "") + text;
    ui.finalText.appendChild(span);
    ui.download.disabled = false;
  }

  function showLevel(db) {
    // -60 dBFS .. 0 dBFS mapped onto the bar.
    const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    ui.meter.style.width = `${pct.toFixed(0)}%`;
    ui.levelText.textContent = db > -100 ? `${db.toFixed(0)} dBFS` : "silent";
  }

  function transcriptText() {
    return state.finalTranscript ?? state.phrases.join(" ");
  }

  // --- the WebSocket session ---

  function protocols(key) {
    return key ? [`openasr.bearer.${key}`, "openasr"] : ["openasr"];
  }

  function send(type, payload) {
    state.ws.send(JSON.stringify({ type, payload }));
  }

  function sendAudio(buffer) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || state.stopping) return;
    if (!state.configured) {
      state.queue.push(buffer);
      if (state.queue.length > MAX_QUEUED_FRAMES) state.queue.shift();
      return;
    }
    ws.send(buffer);
  }

  function onEvent(event) {
    const payload = event.payload || {};
    switch (event.type) {
      case "speech.config.ack":
        state.configured = true;
        state.sessionId = payload.session_id;
        setStatus(`Listening (session ${payload.session_id}, model ${payload.effective_config?.model_id ?? "?"})`);
        for (const buffer of state.queue.splice(0)) state.ws.send(buffer);
        break;
      case "speech.hypothesis":
        ui.interim.textContent = payload.text ? ` ${payload.text}` : "";
        break;
      case "speech.phrase":
        if (payload.status === "EndOfStream") {
          state.finalTranscript = payload.text;
          ui.interim.textContent = "";
          setStatus("Finished");
        } else if (payload.text) {
          state.phrases.push(payload.text);
          appendPhrase(payload.text);
          ui.interim.textContent = "";
        }
        break;
      case "speech.backpressure":
        setStatus(payload.action === "slow_down" ? "Server is behind: audio is queued" : "Listening");
        break;
      case "speech.error":
        showError(`${payload.code}: ${payload.message}`);
        break;
      default:
        break; // speech.checkpoint and future events: nothing to show
    }
  }

  function connect(url, key) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(url, protocols(key));
      } catch (err) {
        reject(err);
        return;
      }
      ws.binaryType = "arraybuffer";
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve(ws);
      };
      ws.onmessage = (message) => {
        if (typeof message.data !== "string") return;
        try {
          onEvent(JSON.parse(message.data));
        } catch (err) {
          console.warn("bad server frame", err);
        }
      };
      ws.onclose = (close) => {
        if (!opened) {
          // Browsers hide the HTTP status of a refused upgrade (401, 403, 429) on purpose.
          reject(new Error("the server refused the connection (wrong API key, origin not allowed, or server down)"));
          return;
        }
        onClosed(close);
      };
    });
  }

  function onClosed(close) {
    const normal = close.code === 1000;
    if (!normal) showError(`Connection closed (code ${close.code}${close.reason ? `: ${close.reason}` : ""})`);
    if (!state.finalTranscript && !normal) setStatus("Disconnected");
    stopAudio();
    state.ws = null;
    setRunning(false);
  }

  // --- microphone ---

  async function startAudio() {
    state.stream = await navigator.mediaDevices.getUserMedia({
      // Raw audio: browser speech "enhancements" are tuned for calls, not for recognition.
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    state.context = new AudioContext();
    await state.context.audioWorklet.addModule(WORKLET_URL);
    const source = state.context.createMediaStreamSource(state.stream);
    state.node = new AudioWorkletNode(state.context, "pcm-downsampler", {
      processorOptions: { targetRate: TARGET_RATE_HZ, frameMs: FRAME_MS },
    });
    state.node.port.onmessage = (message) => {
      const data = message.data;
      if (data.pcm) {
        showLevel(data.level);
        sendAudio(data.pcm);
      }
      if (data.flushed) finishSession();
    };
    source.connect(state.node);
    // Not connected to the speakers: the worklet runs because the graph pulls it through
    // a silent destination connection.
    const mute = state.context.createGain();
    mute.gain.value = 0;
    state.node.connect(mute).connect(state.context.destination);
  }

  function stopAudio() {
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    if (state.node) state.node.port.postMessage("stop");
    if (state.context) state.context.close().catch(() => {});
    state.stream = state.context = state.node = null;
    showLevel(-100);
  }

  function finishSession() {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && state.configured) {
      send("speech.end", {});
      setStatus("Finishing: transcribing the last words…");
    }
    state.stopping = true;
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  }

  // --- buttons ---

  async function start() {
    showError("");
    const url = ui.url.value.trim();
    const key = ui.key.value.trim();
    if (!/^wss?:\/\//.test(url)) {
      showError("The server URL must start with ws:// or wss://");
      return;
    }
    if (ui.remember.checked && key) sessionStorage.setItem(KEY_STORAGE, key);
    setRunning(true);
    setStatus("Connecting…");
    Object.assign(state, { configured: false, queue: [], stopping: false, finalTranscript: null });
    try {
      state.ws = await connect(url, key);
      const windowMs = Number(ui.window.value) || 5000;
      send("speech.config", {
        language: "en",
        sample_rate: TARGET_RATE_HZ,
        encoding: "pcm_s16le",
        window_duration_ms: windowMs,
        overlap_duration_ms: Math.min(500, windowMs - 1),
      });
      await startAudio();
      setStatus(state.configured ? "Listening" : "Waiting for the server…");
    } catch (err) {
      showError(err && err.name === "NotAllowedError" ? "Microphone access was denied" : String(err.message || err));
      setStatus("Stopped");
      stopAudio();
      if (state.ws) state.ws.close(1000);
      state.ws = null;
      setRunning(false);
    }
  }

  function stop() {
    ui.stop.disabled = true;
    if (state.node) {
      state.node.port.postMessage("flush"); // the worklet posts its last samples, then "flushed"
      setTimeout(() => {
        if (!state.stopping) finishSession();
      }, 1000);
    } else {
      finishSession();
    }
  }

  function download() {
    const blob = new Blob([transcriptText() + "\n"], { type: "text/plain;charset=utf-8" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `transcript-${state.sessionId || "openasr"}.txt`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  function clear() {
    ui.finalText.textContent = "";
    ui.interim.textContent = "";
    state.phrases = [];
    state.finalTranscript = null;
    ui.download.disabled = true;
  }

  ui.start.addEventListener("click", start);
  ui.stop.addEventListener("click", stop);
  ui.download.addEventListener("click", download);
  ui.clear.addEventListener("click", clear);
  if (!window.AudioWorkletNode || !navigator.mediaDevices) {
    showError("This browser cannot capture audio here (AudioWorklet and getUserMedia need https or localhost).");
    ui.start.disabled = true;
  }
})();
