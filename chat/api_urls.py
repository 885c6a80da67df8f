"""The HTTP API for IDE plugins, under /api/ (see chat/api.py and /api/openapi.json)."""

from django.urls import path

from . import api

app_name = "api"

urlpatterns = [
    path("analysis/chat", api.chat, name="chat"),
    path("claude-code/pool/status", api.pool_status, name="pool-status"),
    path("openapi.json", api.openapi, name="openapi"),
]
