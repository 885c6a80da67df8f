"""Closing a member's websockets when they log out or their account is deactivated.

The signal reaches every socket of the member through the channel layer (also in another
server process when the layer is Redis), so an open tab cannot go on running turns.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest

from chat.live.notify import member_group

from .sockets import ACCOUNT_CLOSED


def close_sockets(user_id: int) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(member_group(user_id), {"type": ACCOUNT_CLOSED})


@receiver(user_logged_out)
def _logged_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        close_sockets(user.pk)


@receiver(post_save, sender=User)
def _saved(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        close_sockets(instance.pk)
