"""What this node is doing right now: connections, live sessions, windows in flight.

One process-wide object read by ``/health``, ``/ready``, admission and the metrics gauges. It
lives on the event loop thread only (no locks needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transcription import metrics


@dataclass
class NodeState:
    """Counters of this daphne process; the consumer updates them, health reads them."""

    connections: int = 0
    connection_keys: dict[str, int] = field(default_factory=dict)  # API key id → connections
    sessions: dict[str, str] = field(default_factory=dict)  # session id → consumer channel
    session_keys: dict[str, str] = field(default_factory=dict)  # session id → API key id
    inference_pending: int = 0
    draining: bool = False

    def connection_opened(self, key_id: str | None = None) -> None:
        self.connections += 1
        if key_id is not None:
            self.connection_keys[key_id] = self.connection_keys.get(key_id, 0) + 1
        metrics.ACTIVE_CONNECTIONS.set(self.connections)

    def connection_closed(self, key_id: str | None = None) -> None:
        self.connections = max(0, self.connections - 1)
        if key_id is not None:
            left = self.connection_keys.get(key_id, 0) - 1
            if left > 0:
                self.connection_keys[key_id] = left
            else:
                self.connection_keys.pop(key_id, None)
        metrics.ACTIVE_CONNECTIONS.set(self.connections)

    def connections_of_key(self, key_id: str) -> int:
        """Open connections on this node made with one API key (its per-key cap)."""
        return self.connection_keys.get(key_id, 0)

    def session_started(self, session_id: str, channel: str, key_id: str | None = None) -> None:
        self.sessions[session_id] = channel
        if key_id is not None:
            self.session_keys[session_id] = key_id
        metrics.ACTIVE_SESSIONS.set(len(self.sessions))

    def session_ended(self, session_id: str) -> None:
        self.session_keys.pop(session_id, None)
        if self.sessions.pop(session_id, None) is not None:
            metrics.ACTIVE_SESSIONS.set(len(self.sessions))

    def job_submitted(self) -> None:
        self.inference_pending += 1
        metrics.INFERENCE_QUEUE_DEPTH.set(self.inference_pending)

    def job_finished(self) -> None:
        self.inference_pending = max(0, self.inference_pending - 1)
        metrics.INFERENCE_QUEUE_DEPTH.set(self.inference_pending)

    def sessions_of_key(self, key_id: str) -> int:
        """Live sessions on this node opened with one API key (its per-key limit)."""
        return sum(1 for k in self.session_keys.values() if k == key_id)

    @property
    def active_sessions(self) -> int:
        return len(self.sessions)


NODE = NodeState()
