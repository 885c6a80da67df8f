"""ASGI entry point: HTTP through Django, websockets through Channels; the engine starts with the server.

The engine is built here, once, and handed down: every connection's ASGI scope carries it
(:class:`EngineScope`), where views (``request.engine``) and consumers (``self.scope``) find it.
"""

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Initialise Django (app registry, models) before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from daphne.ws_protocol import WebSocketProtocol  # noqa: E402

from chat.web.engine import SCOPE_KEY  # noqa: E402
from chat.web.origin import SameOriginValidator  # noqa: E402
from chat.web.sockets import auth_stack  # noqa: E402
from project import runtime  # noqa: E402
from project.routing import websocket_urlpatterns  # noqa: E402
from runtime import Engine  # noqa: E402

# A frame over Daphne's size limit (--websocket-max-message-size, 1 MiB unless set) made autobahn drop
# the connection: the page saw close 1006 and reconnected, never told why. Failing by a closing
# handshake instead sends close 1009 ("message too big") with its reason, which the page explains.
# Autobahn copies this option from the factory only onto a protocol that does not have it already.
WebSocketProtocol.failByDrop = False

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class EngineScope:
    """ASGI middleware: puts the engine into every connection's scope."""

    def __init__(self, app: App, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, SCOPE_KEY: self.engine}, receive, send)


def application_for(engine: Engine) -> EngineScope:
    """The whole application, serving with ``engine`` (tests build one on their own engine)."""
    return EngineScope(
        ProtocolTypeRouter(
            {
                "http": django_asgi_app,
                "websocket": SameOriginValidator(auth_stack(URLRouter(websocket_urlpatterns))),
            }
        ),
        engine,
    )


engine = runtime.build_for_settings()
application = application_for(engine)
runtime.start_with_daphne(engine)
