from django.conf import settings
from django.http import HttpRequest

from chat import selectors
from chat.services import attachments, budgets
from members import roles

from .sockets import MAX_FRAME_BYTES
from .theme import THEMES, theme_of


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
        context["recent_chats"] = selectors.recent_chats(user_id=user.pk)
        # A viewer's pages hide what runs anything (the server refuses it anyway).
        context["may_run"] = roles.may_run(user)
        # What is left of the budgets on their own chats, in the sidebar of every page (chats included).
        context["budgets_left"] = budgets.own_standings(user_id=user.pk)
    return context
