"""The in-memory channel layer (no REDIS_URL), without its cost per message that grows with the sockets.

Channels' ``InMemoryChannelLayer`` walks every channel and every group membership to drop
expired ones on every ``send``, ``group_send`` and ``receive``: with a thousand sockets that is
half a millisecond a call, paid by every socket for every fragment. Here that walk runs at most
once a second, and a group send puts the message on each queue directly instead of through a
task per socket. Expiry itself works as before (messages live ``expiry`` seconds).
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy
from typing import Any

from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

CLEAN_EVERY = 1.0


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):  # type: ignore[misc]  # Channels ships no types
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at >= CLEAN_EVERY:
            self._cleaned_at = now
            super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        expires = time.time() + self.expiry
        for channel in list(self.groups.get(group, {})):
            queue = self.channels.setdefault(channel, asyncio.Queue(maxsize=self.get_capacity(channel)))
            try:
                queue.put_nowait((expires, deepcopy(message)))
            except asyncio.QueueFull:
                pass  # as in Channels: a socket that is that far behind misses group messages
