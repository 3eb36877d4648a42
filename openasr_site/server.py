"""OpenASR's daphne entry point: ``python -m openasr_site.server``.

Small, documented additions to daphne 4.2, by subclassing (not forking):

1. The ASGI "WebSocket Denial Response" extension (``websocket.http.response.start`` /
   ``.body``). Daphne answers 403 to every close before accept; with the extension the app
   can answer 401, 404 or 429 with headers (``Retry-After``) before the handshake completes,
   as docs/PROTOCOL.md "Transport and auth" requires. The app checks
   ``scope["extensions"]["websocket.http.response"]`` and speaks standard ASGI, so it also
   runs under servers that implement the extension natively.
2. Graceful shutdown: on SIGTERM the node stops accepting (``/ready`` turns 503, new
   connections and sessions are refused), lets live sessions finish for up to
   ``WSS_SHUTDOWN_GRACE_S`` (their checkpoints are already stored after every window), then
   closes the rest with 1012 (service restart) so clients resume on another node.
3. Close codes 1008 and 1011 from the application. autobahn's ``sendClose`` accepts only 1000
   and 3000-4999 from an application, but RFC 6455 section 7.4.1 defines 1008 (policy
   violation) and 1011 (unexpected condition) for exactly our cases (docs/PROTOCOL.md "Close
   codes"), so those two go out as protocol close frames.
4. A bound on what waits to be written to one client (``WSS_MAX_OUTGOING_BYTES``): a client
   that stops reading would otherwise make the server buffer its events without limit. Over
   the bound the connection is closed with 1008 and dropped.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openasr_site.settings")

from transcription.denial import DENIAL_EXTENSION  # noqa: E402  (after the settings module)

log = logging.getLogger("openasr.server")

CLOSE_SERVICE_RESTART = 1012
PROTOCOL_CLOSE_CODES = frozenset({1008, 1011})


def _pending_write_bytes(transport: Any) -> int:
    """Bytes twisted holds for a TCP transport that the kernel has not taken yet."""
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return max(0, buffered) + int(getattr(transport, "_tempDataLen", 0))


def _build_server_classes() -> tuple[type, type]:
    # daphne.server installs the asyncio reactor on import: import it before anything else
    # touches twisted.internet.reactor.
    from autobahn.websocket.types import ConnectionDeny
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    class DenialWebSocketProtocol(WebSocketProtocol):
        """daphne's protocol plus the denial-response messages of the ASGI spec."""

        _denial: dict[str, Any] | None = None
        max_outgoing_bytes = 0  # set by the server from WSS_MAX_OUTGOING_BYTES

        def serverClose(self, code: int | None = None) -> None:
            if code in PROTOCOL_CLOSE_CODES:
                self.sendCloseFrame(code=code, isReply=False)
                return
            super().serverClose(code)

        def handle_reply(self, message: dict[str, Any]) -> None:
            kind = message.get("type")
            if (
                kind == "websocket.send"
                and self.max_outgoing_bytes
                and self.state == self.STATE_OPEN
                and _pending_write_bytes(self.transport) > self.max_outgoing_bytes
            ):
                log.warning("closing a connection whose client stopped reading (1008)")
                _count_policy_close()
                self.sendCloseFrame(code=1008, isReply=False)
                self.dropConnection(abort=True)
                return
            if kind == "websocket.http.response.start":
                if self.state != self.STATE_CONNECTING or self._denial is not None:
                    raise ValueError("websocket.http.response.start after the handshake")
                self._denial = {
                    "status": int(message["status"]),
                    "headers": list(message.get("headers", [])),
                    "body": b"",
                }
                return
            if kind == "websocket.http.response.body":
                if self._denial is None:
                    raise ValueError("websocket.http.response.body before .start")
                self._denial["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    self.handshake_deferred.errback(
                        ConnectionDeny(  # type: ignore[no-untyped-call]
                            code=self._denial["status"], reason="Denied"
                        )
                    )
                    del self.handshake_deferred
                    self.server.protocol_disconnected(self)
                return
            super().handle_reply(message)

        def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
            """Send the app's denial response (status, headers, body) instead of a bare one."""
            denial = self._denial
            if denial is None:
                super().failHandshake(reason, code, responseHeaders)
                return
            from http import HTTPStatus

            try:
                phrase = HTTPStatus(denial["status"]).phrase
            except ValueError:
                phrase = "Error"
            lines = [f"HTTP/1.1 {denial['status']} {phrase}"]
            for name, value in denial["headers"]:
                n = name.decode("latin1") if isinstance(name, bytes) else str(name)
                if n.lower() in {"content-length", "connection"}:
                    continue
                v = value.decode("latin1") if isinstance(value, bytes) else str(value)
                lines.append(f"{n}: {v}")
            lines.append(f"Content-Length: {len(denial['body'])}")
            lines.append("Connection: close")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin1")
            self.wasNotCleanReason = reason
            self.sendData(head + denial["body"])
            self.dropConnection(abort=False)

    class OpenASRServer(Server):
        """daphne's Server with the denial extension and a draining SIGTERM."""

        @property
        def ws_factory(self) -> Any:
            return self._ws_factory

        @ws_factory.setter
        def ws_factory(self, factory: Any) -> None:
            # Server.run() builds its WebSocketFactory itself; swap in our protocol class.
            from django.conf import settings

            DenialWebSocketProtocol.max_outgoing_bytes = settings.OPENASR.max_outgoing_bytes
            factory.protocol = DenialWebSocketProtocol
            # Send the close frame (1009 for an oversized message) before dropping the TCP
            # connection, so the client learns why (autobahn drops silently by default).
            factory.setProtocolOptions(failByDrop=False)
            self._ws_factory = factory

        def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
            if scope.get("type") == "websocket":
                scope.setdefault("extensions", {})[DENIAL_EXTENSION] = {}
            return super().create_application(protocol, scope)

    return OpenASRServer, DenialWebSocketProtocol


def _count_policy_close() -> None:
    from transcription import metrics

    metrics.CONNECTIONS_CLOSED_POLICY.inc()


def _install_drain(server: Any, grace_s: float) -> None:
    """SIGTERM: drain (stop accepting, let sessions finish), then stop the reactor."""
    from twisted.internet import reactor as twisted_reactor

    from transcription.registry import NODE

    reactor: Any = twisted_reactor

    def drain_step(deadline: float) -> None:
        if NODE.active_sessions == 0 or time.monotonic() >= deadline:
            for protocol in list(server.connections):
                if getattr(protocol, "state", None) == getattr(protocol, "STATE_OPEN", -1):
                    protocol.sendCloseFrame(code=CLOSE_SERVICE_RESTART)
            reactor.callLater(0.5, reactor.stop)
            return
        reactor.callLater(0.2, drain_step, deadline)

    def on_sigterm(signum: int, frame: Any) -> None:
        if NODE.draining:
            return
        log.info("SIGTERM: draining %d live sessions (up to %.0f s)", NODE.active_sessions, grace_s)
        NODE.draining = True
        reactor.callFromThread(drain_step, time.monotonic() + grace_s)

    def on_sigint(signum: int, frame: Any) -> None:
        log.info("interrupted: stopping")
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigint)


def main(argv: list[str] | None = None) -> None:
    """Start daphne with OpenASR's settings (``WSS_HOST``/``WSS_PORT``, frame limit, ...)."""
    server_cls, _ = _build_server_classes()
    import django

    django.setup()
    from daphne.endpoints import build_endpoint_description_strings
    from django.conf import settings

    cfg = settings.OPENASR
    parser = argparse.ArgumentParser(description="OpenASR streaming speech-to-text server")
    parser.add_argument("--host", default=cfg.host)
    parser.add_argument("--port", type=int, default=cfg.port)
    args = parser.parse_args(argv)

    from django.core.exceptions import ImproperlyConfigured

    from openasr_site.asgi import application
    from transcription.startup import check_startup

    try:
        check_startup()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"openasr: cannot start: {exc}\n")
        raise SystemExit(2) from None
    server = server_cls(
        application=application,
        endpoints=build_endpoint_description_strings(host=args.host, port=args.port),
        # A frame larger than the per-second byte budget could never pass the rate limit:
        # refuse it at the WebSocket layer (1009) before buffering it whole.
        websocket_max_message_size=min(cfg.max_frame_bytes, cfg.max_audio_bytes_per_s),
        websocket_timeout=cfg.max_session_s + 600,
        application_close_timeout=10,
        signal_handlers=False,
        server_name="openasr",
        ready_callable=lambda: _on_ready(args.host, args.port),
    )
    _install_drain(server, cfg.shutdown_grace_s)
    server.run()
    log.info("server stopped")
    sys.exit(0)


def _on_ready(host: str, port: int) -> None:
    from twisted.internet import reactor as twisted_reactor

    from transcription.startup import warm_up

    reactor: Any = twisted_reactor

    reactor.callLater(0, warm_up)
    log.info("OpenASR listening on ws://%s:%d/transcribe", host, port)


if __name__ == "__main__":
    main()
