from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Claude Code chats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Signals that close a member's websockets at logout and deactivation.
        from chat.web import accounts  # noqa: F401
