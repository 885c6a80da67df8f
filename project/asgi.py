"""ASGI entry point: HTTP through Django, websockets through Channels; the runtime starts with the server."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Initialise Django (app registry, models) before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from daphne.ws_protocol import WebSocketProtocol  # noqa: E402

from chat.web.origin import SameOriginValidator  # noqa: E402
from chat.web.sockets import auth_stack  # noqa: E402
from project.routing import websocket_urlpatterns  # noqa: E402
from project.runtime import start_with_daphne  # noqa: E402

# A frame over Daphne's size limit (--websocket-max-message-size, 1 MiB unless set) made autobahn drop
# the connection: the page saw close 1006 and reconnected, never told why. Failing by a closing
# handshake instead sends close 1009 ("message too big") with its reason, which the page explains.
# Autobahn copies this option from the factory only onto a protocol that does not have it already.
WebSocketProtocol.failByDrop = False

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(auth_stack(URLRouter(websocket_urlpatterns))),
    }
)
start_with_daphne()
