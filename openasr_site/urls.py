"""HTTP routes: health probes, Prometheus metrics, the admin, OpenAI's transcriptions API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("health.urls")),
    path("", include("django_prometheus.urls")),
    path("admin/", admin.site.urls),
    path("", include("transcription.openai_rest.views")),  # /v1/audio/transcriptions, /v1/models
    path("", include("transcription.views")),  # the browser demo page at /
]
