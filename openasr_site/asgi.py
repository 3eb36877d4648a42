"""ASGI entry point: HTTP → Django (health, metrics, admin), WebSocket ``/transcribe`` → the
consumer behind the handshake middleware, ``channel`` → the inference worker consumer."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openasr_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from transcription.openai_rest.bodylimit import UploadLimitMiddleware  # noqa: E402
from transcription.routing import websocket_application  # noqa: E402
from transcription.worker import channel_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        # /v1/ bodies over the upload cap are refused (413) before Django buffers them.
        "http": UploadLimitMiddleware(django_asgi_app),
        "websocket": websocket_application,
        "channel": channel_application,
    }
)
