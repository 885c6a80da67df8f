from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_login_failed


def _signed_in(sender: object, request: object, user: Any, **kwargs: Any) -> None:
    from . import audit  # the app's models are ready only once ready() ran

    audit.record(actor=user, action=audit.Action.SIGN_IN)


def _sign_in_failed(sender: object, credentials: dict[str, Any], request: object = None, **kwargs: Any) -> None:
    from . import audit

    # The name tried, never the password (Django has already masked it in credentials anyway).
    name = str(credentials.get("username", ""))[:150]
    audit.record(actor=None, actor_name=name, action=audit.Action.SIGN_IN_FAILED)


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = "Members"

    def ready(self) -> None:
        # Signing in is Django's own view: its signals are where the audit log hears of it.
        user_logged_in.connect(_signed_in, dispatch_uid="members-audit-sign-in")
        user_login_failed.connect(_sign_in_failed, dispatch_uid="members-audit-sign-in-failed")
