"""Where web code finds the engine: in the ASGI scope, where the composition root put it.

``project/asgi.py`` wraps the application in :class:`project.engine.EngineScope`, which puts the
engine it was built with into every connection's scope. Channels consumers read it from their
scope; Django views from ``request.engine``, which :class:`EngineMiddleware` sets from the
request's scope (or, for Django's WSGI test client, from its environ, where tests put it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from runtime import Engine, NoEngine

SCOPE_KEY = "engine"


def engine_in(scope: Mapping[str, Any]) -> Engine:
    """The engine of a connection (an engine that says it is not running, if there is none)."""
    engine = scope.get(SCOPE_KEY)
    return engine if isinstance(engine, Engine) else NoEngine()


class EngineMiddleware:
    """Sets ``request.engine`` for the views."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        request.engine = engine_in(getattr(request, "scope", None) or request.META)  # type: ignore[attr-defined]
        return self.get_response(request)  # type: ignore[no-any-return]
