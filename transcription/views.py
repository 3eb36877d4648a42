"""The browser demo: ``/`` serves the page, ``/static/openasr/<file>.js`` its two scripts.

daphne serves no static files and the project has no static-file middleware, so the page's
assets come from this small view (read from the app's static directory, a fixed allow-list of
names, the right content type) and work with ``DEBUG`` off without extra infrastructure.
"""

from __future__ import annotations

from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_safe

STATIC_DIR = Path(__file__).resolve().parent / "static" / "openasr"
ASSETS = {
    "demo.js": "text/javascript; charset=utf-8",
    "pcm-worklet.js": "text/javascript; charset=utf-8",
}
ASSET_MAX_AGE_S = 300
# The page connects to whatever server URL the user enters, so connect-src allows any ws(s).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src 'self' data:; media-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@require_safe
def demo(request: HttpRequest) -> HttpResponse:
    """GET ``/``: the live-captions page (no auth: the key is entered in the page)."""
    response = render(request, "openasr/demo.html")
    response["Content-Security-Policy"] = PAGE_CSP
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_safe
def demo_asset(request: HttpRequest, name: str) -> HttpResponse:
    """GET ``/static/openasr/<name>``: one of the page's scripts, or 404."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise Http404("no such asset")
    response = HttpResponse((STATIC_DIR / name).read_bytes(), content_type=content_type)
    response["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE_S}"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# Included from ``openasr_site/urls.py`` with one line; the asset path is the one
# ``{% static %}`` produces with the default STATIC_URL.
urlpatterns = [
    path("", demo, name="openasr-demo"),
    path("static/openasr/<str:name>", demo_asset, name="openasr-demo-asset"),
]
