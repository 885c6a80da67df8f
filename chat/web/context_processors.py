from django.conf import settings
from django.http import HttpRequest


def app(request: HttpRequest) -> dict[str, object]:
    return {"demo_mode": settings.DEMO_MODE, "max_message_chars": settings.CLAUDE_MAX_MESSAGE_CHARS,
            "sandbox_off": settings.CLAUDE_SANDBOX == "off"}
