from django.conf import settings
from django.http import HttpRequest

from chat.models import Session
from chat.services import attachments

from .sockets import MAX_FRAME_BYTES
from .theme import THEMES, theme_of

# The sidebar's recent chats on every page.
RECENT_CHATS = 12


def app(request: HttpRequest) -> dict[str, object]:
    context: dict[str, object] = {
        "demo_mode": settings.DEMO_MODE,
        "max_message_chars": settings.CLAUDE_MAX_MESSAGE_CHARS,
        "max_frame_bytes": MAX_FRAME_BYTES,
        "max_attachment_bytes": attachments.max_bytes(),
        "sandbox_off": settings.CLAUDE_SANDBOX == "off",
        "models": settings.CLAUDE_MODELS,
        "theme": theme_of(request),
        "themes": THEMES,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # Lazy: a page that shows no sidebar (a fragment) runs no query. Tasks' sessions are not chats.
        context["recent_chats"] = (
            Session.objects.owned_by(user).chats().only("id", "title", "status", "last_activity_at")[:RECENT_CHATS]
        )
    return context
