"""Failures on demand, for the chaos tests (tests/chaos/) and benchmarks/failover.py: private Redis
servers (with a replica and a Sentinel), and a live client that streams speech in real time,
records when each caption arrives, and resumes on another node when its node dies.

Every process here is the test's own, on its own loopback port, and is stopped (SIGKILL for the
failures, SIGTERM otherwise) by the test that started it; no shared Redis is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
import websockets

from tests.support.server import (
    Process,
    Server,
    free_port,
    start_server,
    start_worker,
    wait_until,
)

BYTES_PER_MS = 32  # 16 kHz pcm_s16le mono
FRAME_MS = 200
# A resumed client sends the audio it buffered while reconnecting this many times faster than
# real time (within the server's burst allowance), then goes on in real time.
CATCH_UP_SPEED = 8.0


@dataclass
class RedisServer:
    """A redis-server (or Sentinel) of the test's own, with its data directory: killing and
    restarting it keeps the append-only file, as a production Redis with AOF does."""

    port: int = field(default_factory=free_port)
    args: Sequence[str] = ()
    sentinel: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-redis-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.sentinel:
            conf = self.workdir / "sentinel.conf"
            if not conf.exists():  # Sentinel rewrites its file: keep what it learnt
                conf.write_text("".join(f"{line}\n" for line in self.args))
            binary = shutil.which("redis-sentinel")
            cmd = [binary, str(conf)] if binary else ["redis-server", str(conf), "--sentinel"]
            cmd += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        else:
            cmd = [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                *self.args,
            ]
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, timeout=15, interval=0.05)
        return self

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (the AOF has every write, fsync always)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class SentinelSetup:
    """A master, its replica and one Sentinel (quorum 1) that promotes the replica about a
    second after the master stops answering."""

    master: RedisServer
    replica: RedisServer
    sentinel: RedisServer
    name: str = "chaosmaster"

    @classmethod
    def start(cls, name: str = "chaosmaster", down_after_ms: int = 1000) -> SentinelSetup:
        master = RedisServer().start()
        replica = RedisServer(args=["--replicaof", "127.0.0.1", str(master.port)]).start()
        wait_until(lambda: _in_sync(replica), timeout=15, interval=0.1)
        sentinel = RedisServer(
            sentinel=True,
            args=[
                f"sentinel monitor {name} 127.0.0.1 {master.port} 1",
                f"sentinel down-after-milliseconds {name} {down_after_ms}",
                f"sentinel failover-timeout {name} 5000",
                f"sentinel parallel-syncs {name} 1",
            ],
        ).start()
        setup = cls(master, replica, sentinel, name)
        wait_until(lambda: setup.master_port() == master.port, timeout=15, interval=0.1)
        # The Sentinel must know the replica before the master dies, or it has no one to promote.
        wait_until(lambda: _replicas_known(setup), timeout=30, interval=0.2)
        return setup

    def master_port(self) -> int | None:
        try:
            found = redis.Redis(port=self.sentinel.port, socket_timeout=0.5).execute_command(
                "SENTINEL", "get-master-addr-by-name", self.name
            )
        except redis.RedisError:
            return None
        return int(found[1]) if found else None

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


def _in_sync(replica: RedisServer) -> bool:
    try:
        info = redis.Redis(port=replica.port, socket_timeout=0.5).info("replication")
    except redis.RedisError:
        return False
    return info.get("master_link_status") == "up"


def _replicas_known(setup: SentinelSetup) -> bool:
    try:
        replicas = redis.Redis(port=setup.sentinel.port, socket_timeout=0.5).execute_command(
            "SENTINEL", "replicas", setup.name
        )
    except redis.RedisError:
        return False
    return bool(replicas)


@dataclass
class Caption:
    """One ``speech.phrase`` (Success) and when it arrived (monotonic clock)."""

    at: float
    text: str
    start_ms: int
    end_ms: int


@dataclass
class LiveRun:
    """What a live client saw over one session, across the connections it took."""

    started_at: float = 0.0  # audio time 0 on the monotonic clock (real-time pacing)
    captions: list[Caption] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    final_text: str | None = None
    checkpoint: dict[str, Any] | None = None
    reconnected_at: float | None = None  # the resume's upgrade started
    first_resumed_at: float | None = None  # first caption after the resume
    resumed_ack_at: float | None = None  # the resume was acknowledged
    replayed_ms: int = 0  # audio sent again after the resume (it was after the checkpoint)

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.captions if c.text)

    def delays_s(self) -> list[float]:
        """Each caption's delay behind the speech it transcribes (real-time stream)."""
        return [c.at - (self.started_at + c.end_ms / 1000) for c in self.captions]

    def gap_s(self, after: float) -> float:
        """How long after ``after`` the next caption came (the caption gap of a failure)."""
        later = [c.at for c in self.captions if c.at > after]
        return (later[0] - after) if later else float("inf")


class LiveClient:
    """Streams ``pcm`` in real time to a node; ``switch_to`` resumes on another node with the
    session id (the way a client reacts to a dead connection)."""

    def __init__(self, pcm: bytes, payload: dict[str, Any]) -> None:
        self.pcm = pcm
        self.payload = payload
        self.run = LiveRun()
        self._ws: Any = None
        self._sent_ms = 0
        self._session_id = ""
        self._resumed = False

    async def open(self, url: str) -> None:
        """Connect and configure (the first connection)."""
        self._ws = await self._configure(url, self.payload)
        self.run.started_at = time.monotonic()

    async def _configure(self, url: str, payload: dict[str, Any]) -> Any:
        ws = await websockets.connect(url, max_size=None, open_timeout=10)
        await ws.send(json.dumps({"type": "speech.config", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if ack["type"] != "speech.config.ack":
            raise AssertionError(f"not acknowledged: {ack}")
        self._session_id = ack["payload"]["session_id"]
        self._ack = ack["payload"]
        return ws

    @property
    def sent_ms(self) -> int:
        """Audio sent so far on this connection's timeline."""
        return self._sent_ms

    async def stream_until(self, audio_ms: int) -> None:
        """Send audio in real time up to ``audio_ms`` (faster while catching up)."""
        total_ms = min(audio_ms, len(self.pcm) // BYTES_PER_MS)
        while self._sent_ms < total_ms:
            due = self.run.started_at + self._sent_ms / 1000
            ahead = due - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            chunk = self.pcm[
                self._sent_ms * BYTES_PER_MS : (self._sent_ms + FRAME_MS) * BYTES_PER_MS
            ]
            try:
                await self._ws.send(chunk)
            except websockets.ConnectionClosed:
                return  # the server closed the session: the receiver has why
            self._sent_ms += FRAME_MS
            if ahead <= 0 and self._resumed:
                await asyncio.sleep(FRAME_MS / 1000 / CATCH_UP_SPEED)

    async def receive(self) -> None:
        """Collect events until the connection ends (run as a task per connection)."""
        ws = self._ws
        try:
            async for raw in ws:
                event = json.loads(raw)
                kind, payload = event["type"], event.get("payload", {})
                self.run.events.append((time.monotonic(), event))
                if kind == "speech.phrase" and payload["status"] == "Success":
                    start, length = int(payload["offset"]), int(payload["duration"])
                    caption = Caption(time.monotonic(), payload["text"], start, start + length)
                    self.run.captions.append(caption)
                    if self._resumed and self.run.first_resumed_at is None:
                        self.run.first_resumed_at = caption.at
                elif kind == "speech.phrase":
                    self.run.final_text = payload["text"]
                elif kind == "speech.error":
                    self.run.errors.append(payload)
                elif kind == "speech.checkpoint":
                    self.run.checkpoint = payload
        except websockets.ConnectionClosed:
            pass
        self.run.close_codes.append(ws.close_code)

    async def switch_to(self, url: str) -> None:
        """The node is gone: resume on ``url`` by session id and re-send from the resume point."""
        self.run.reconnected_at = time.monotonic()
        self._resumed = True
        resume = {"session_id": self._session_id}
        self._ws = await self._configure(url, {**self.payload, "resume_checkpoint": resume})
        self.run.resumed_ack_at = time.monotonic()
        self.run.replayed_ms = self._sent_ms - int(self._ack["last_audio_ms"])
        self._sent_ms = int(self._ack["last_audio_ms"]) // FRAME_MS * FRAME_MS

    async def end(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(json.dumps({"type": "speech.end", "payload": {}}))


# --- the four failures, as the chaos tests and benchmarks/failover.py run them ---

SCENARIOS = ("worker_kill", "redis_restart", "sentinel_failover", "node_kill")
BASELINE = "none"  # the same stream with no failure (benchmarks/failover.py's reference)
KILL_AT_MS = 7000  # audio time of the failure: two windows committed before it
REDIS_DOWN_S = 4.0  # how long the killed Redis stays down before it is restarted


@dataclass
class Outcome:
    """One scenario's run: what the client saw, when the failure happened, what the
    processes said afterwards."""

    scenario: str
    run: LiveRun
    failed_at: float = 0.0
    ready_again_s: float | None = None  # failure → /ready 200 again (Redis scenarios)
    outage_reported: bool = False  # /ready said redis_ok false meanwhile
    processes_alive: bool = True  # every server and worker not killed on purpose survived
    logs: str = ""
    server_logs: str = ""  # whole logs of the servers that were not killed (window timings)

    def figures(self) -> dict[str, Any]:
        """What the benchmark prints: the caption gap the failure caused and the delays."""
        delays = self.run.delays_s()
        out: dict[str, Any] = {
            "caption_gap_s": _finite(round(self.run.gap_s(self.failed_at), 2)),
            "max_caption_delay_s": round(max(delays), 2) if delays else None,
            "errors": len(self.run.errors),
            "close_codes": self.run.close_codes,
        }
        if self.ready_again_s is not None:
            out["ready_again_s"] = round(self.ready_again_s, 2)
        if self.run.reconnected_at is not None and self.run.first_resumed_at is not None:
            out["reconnect_to_first_phrase_s"] = round(
                self.run.first_resumed_at - self.run.reconnected_at, 2
            )
            assert self.run.resumed_ack_at is not None
            out["reconnect_to_ack_s"] = round(self.run.resumed_ack_at - self.run.reconnected_at, 2)
            out["replayed_ms"] = self.run.replayed_ms
            # The first resumed phrase cannot come before its last word is spoken: how much of
            # the reconnect -> phrase time the speaker was still talking, and what is left.
            first = next(c for c in self.run.captions if c.at == self.run.first_resumed_at)
            spoken_at = self.run.started_at + first.end_ms / 1000
            still_speaking = max(0.0, spoken_at - self.run.reconnected_at)
            out["speaking_after_reconnect_s"] = round(still_speaking, 2)
            out["resume_cost_s"] = round(
                self.run.first_resumed_at - max(self.run.reconnected_at, spoken_at), 2
            )
        return out


def _finite(value: float) -> float | None:
    """None for "never" (no caption after the failure), so the JSON stays JSON."""
    return value if value != float("inf") else None


def _ready_again(server: Server, timeout_s: float) -> tuple[bool, float]:
    """Whether ``/ready`` reported the outage (503 with ``redis_ok`` false) and when it was 200
    again afterwards."""
    deadline = time.monotonic() + timeout_s
    reported = False
    while time.monotonic() < deadline:
        try:
            status, body = server.get("/ready")
        except OSError:
            status, body = 0, {}
        if status != 200:
            reported = reported or (isinstance(body, dict) and body.get("redis_ok") is False)
        elif reported or time.monotonic() > deadline - timeout_s + 5:
            return reported, time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"{server.name} not ready within {timeout_s} s of the failure")


def _worker_pid(worker_id: str) -> int:
    return int(worker_id.rsplit("-", 2)[-2])  # WORKER_ID: host-pid-random


async def _busy_worker(redis_url: str, workers: Sequence[Process]) -> Process:
    """The worker running a window now (its heartbeat says so, or it burns CPU)."""
    by_pid = {w.proc.pid: w for w in workers if w.proc is not None and w.alive()}
    procs = {pid: psutil.Process(pid) for pid in by_pid}
    cpu = {pid: p.cpu_times() for pid, p in procs.items()}
    client = redis.Redis.from_url(redis_url, socket_timeout=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        for key in client.scan_iter(match="openasr:worker:*"):
            raw = client.get(key)
            if raw and json.loads(raw).get("running"):
                pid = _worker_pid(json.loads(raw)["worker_id"])
                if pid in by_pid:
                    return by_pid[pid]
        for pid, p in procs.items():
            now = p.cpu_times()
            used = (now.user + now.system) - (cpu[pid].user + cpu[pid].system)
            cpu[pid] = now
            if used > 0.02:  # 20 ms of CPU in 100 ms: whisper.cpp at work (idle: ~0)
                return by_pid[pid]
    raise TimeoutError("no worker started a window within 30 s")


async def run_scenario(
    scenario: str, env: dict[str, str], pcm: bytes, payload: dict[str, Any]
) -> Outcome:
    """Stream ``pcm`` in real time through a fresh deployment while ``scenario`` happens."""
    if scenario == "sentinel_failover":
        sentinels: SentinelSetup | None = SentinelSetup.start()
        redis_server = sentinels.master
        env = {
            **env,
            "REDIS_URL": redis_server.url,
            "REDIS_SENTINELS": f"127.0.0.1:{sentinels.sentinel.port}",
            "REDIS_SENTINEL_MASTER": sentinels.name,
        }
    else:
        sentinels = None
        redis_server = RedisServer().start()
        env = {**env, "REDIS_URL": redis_server.url}
    workers = [start_worker(env)]
    if scenario == "worker_kill":
        workers.append(start_worker(env))
    servers: list[Server] = []
    outcome = Outcome(scenario, LiveRun())
    try:
        servers.append(start_server(env))
        if scenario == "node_kill":
            servers.append(start_server(env))
        client = LiveClient(pcm, payload)
        outcome.run = client.run
        await client.open(servers[0].url)
        receiver = asyncio.ensure_future(client.receive())
        await client.stream_until(KILL_AT_MS)
        outcome.failed_at = time.monotonic()
        if scenario == BASELINE:
            await client.stream_until(len(pcm))
        elif scenario == "worker_kill":
            # The stream goes on while the test waits for a window in flight: on a fast machine
            # the windows before KILL_AT_MS are long done, the next one needs more audio.
            streaming = asyncio.ensure_future(client.stream_until(len(pcm)))
            victim = await _busy_worker(env["REDIS_URL"], workers)
            victim.kill(signal.SIGKILL)
            outcome.failed_at = time.monotonic()
            workers.remove(victim)
            workers.append(start_worker(env))  # the replacement, as a scheduler would
            await streaming
        elif scenario in ("redis_restart", "sentinel_failover"):
            redis_server.kill()
            outcome.failed_at = time.monotonic()
            ready = asyncio.ensure_future(asyncio.to_thread(_ready_again, servers[0], 60))
            if sentinels is None:
                await client.stream_until(KILL_AT_MS + int(REDIS_DOWN_S * 1000))
                redis_server.start()
            await client.stream_until(len(pcm))
        else:  # node_kill, once the client holds a checkpoint with some audio behind it
            while client.sent_ms * BYTES_PER_MS < len(pcm) and not (
                client.run.checkpoint and client.run.checkpoint["last_audio_ms"] > 0
            ):
                await client.stream_until(client.sent_ms + FRAME_MS)
            servers[0].kill(signal.SIGKILL)
            outcome.failed_at = time.monotonic()
            await asyncio.wait_for(receiver, 10)
            await client.switch_to(servers[1].url)
            receiver = asyncio.ensure_future(client.receive())
            await client.stream_until(len(pcm))
        await client.end()
        await asyncio.wait_for(receiver, 120)
        live_server = servers[-1]
        if scenario in ("redis_restart", "sentinel_failover"):
            outcome.outage_reported, ready_at = await ready
            outcome.ready_again_s = ready_at - outcome.failed_at
        alive = [s for s in servers if s is live_server or scenario != "node_kill"] + workers
        outcome.processes_alive = all(p.alive() for p in alive)
        outcome.logs = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in alive)
        outcome.server_logs = "\n".join(s.log() for s in servers if s in alive)
    finally:
        for process in [*servers, *workers]:
            process.stop()
        if sentinels is not None:
            sentinels.stop()
        else:
            redis_server.stop()
    return outcome
