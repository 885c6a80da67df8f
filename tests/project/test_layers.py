"""The in-memory channel layer of a server without Redis: delivers as Channels' does, expires as it does."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

from project.layers import CLEAN_EVERY, InMemoryChannelLayer
from project.settings import redis_channel_layer


def test_it_is_the_layer_the_settings_choose_without_redis():
    assert isinstance(get_channel_layer(), InMemoryChannelLayer)


async def test_a_group_message_reaches_every_member_as_a_copy_of_its_own():
    layer = InMemoryChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("chat-1", channel)
    await layer.group_add("chat-2", await layer.new_channel())

    await layer.group_send("chat-1", {"type": "live.fragment", "html": "<p>hi</p>", "event": 7})

    received = [await asyncio.wait_for(layer.receive(channel), 1) for channel in members]
    assert received == [{"type": "live.fragment", "html": "<p>hi</p>", "event": 7}] * 3
    received[0]["html"] = "changed"
    assert received[1]["html"] == "<p>hi</p>"


async def test_a_socket_that_stopped_reading_is_dropped_from_its_groups_once_its_messages_expire():
    layer = InMemoryChannelLayer(expiry=0.1)
    gone, alive = await layer.new_channel(), await layer.new_channel()
    for channel in (gone, alive):
        await layer.group_add("chat-1", channel)
    await layer.group_send("chat-1", {"type": "live.fragment", "html": "one"})
    assert (await layer.receive(alive))["html"] == "one"

    await asyncio.sleep(CLEAN_EVERY + 0.2)
    await layer.group_send("chat-1", {"type": "live.fragment", "html": "two"})

    assert gone not in layer.groups["chat-1"] and alive in layer.groups["chat-1"]
    assert (await layer.receive(alive))["html"] == "two"


async def test_the_redis_layer_as_configured_keeps_a_socket_waiting_through_a_quiet_spell(redis_url):
    # channels-redis waits with blocking pops of 5 s; redis-py's default read timeout is 5 s too.
    layer = RedisChannelLayer(**redis_channel_layer(redis_url)["CONFIG"])
    channel = await layer.new_channel()

    async def after_a_while() -> None:
        await asyncio.sleep(6.5)
        await layer.send(channel, {"type": "live.fragment", "html": "still there"})

    sender = asyncio.ensure_future(after_a_while())
    try:
        assert (await asyncio.wait_for(layer.receive(channel), 15))["html"] == "still there"
    finally:
        sender.cancel()
        await layer.flush()
