from django.urls import re_path

from chat.web.consumers import ChatConsumer, NewChatConsumer, ShareConsumer
from tasks.web.consumers import TasksConsumer
from workspace.web.consumers import TerminalConsumer, WatchConsumer

_PLACE = r"(?P<kind>chat|task)/(?P<pk>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]{1,12})"

# Only a canonical lowercase UUID matches, so no other text reaches the consumer as an id.
websocket_urlpatterns = [
    re_path(
        r"^ws/chat/(?P<session_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$",
        ChatConsumer.as_asgi(),
    ),
    # The New chat page: the id of the chat its first message will make.
    re_path(
        r"^ws/chat/new/(?P<session_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$",
        NewChatConsumer.as_asgi(),
    ),
    re_path(r"^ws/tasks/(?:(?P<task_id>[0-9]{1,12})/)?$", TasksConsumer.as_asgi()),
    # A share link's page: only a token of the shape share links have (chat.services.sharing).
    re_path(r"^ws/share/(?P<token>[A-Za-z0-9_-]{43})/$", ShareConsumer.as_asgi()),
    # A member's terminal in a chat's or task's folder, and the Files page's watch of its agent.
    re_path(rf"^ws/terminal/{_PLACE}/$", TerminalConsumer.as_asgi()),
    re_path(rf"^ws/workspace/{_PLACE}/$", WatchConsumer.as_asgi()),
]
