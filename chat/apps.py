from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Claude Code chats"
    default_auto_field = "django.db.models.BigAutoField"
