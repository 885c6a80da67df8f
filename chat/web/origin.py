"""Websockets only from the app's own pages: the Origin must match scheme, host and port.

Channels' AllowedHostsOriginValidator compares host names only, so a page served on another
port of the same host (another app, a member's own test server) could open a member's sockets
with their cookie. Here the Origin must be the origin of the address the socket was opened on
(a Host in ALLOWED_HOSTS, http for ws and https for wss), or one of CSRF_TRUSTED_ORIGINS (a
site behind a TLS-terminating proxy lists its https origin there).
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": "80", "https": "443"}


def _normalized(origin: str) -> str:
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or not rest or "/" in rest:
        return ""
    host, port = split_domain_port(rest)
    if not host:
        return ""
    return f"{scheme}://{host}:{port or DEFAULT_PORTS.get(scheme, '')}"


def allowed(scope: dict[str, Any]) -> bool:
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host)
    if not origin or not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    own = _normalized(f"{scheme}://{host}")
    trusted = {_normalized(entry) for entry in settings.CSRF_TRUSTED_ORIGINS}
    return _normalized(origin) in {own, *trusted} - {""}


class SameOriginValidator:
    """ASGI middleware: a websocket from another origin is refused before anything else runs."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
