"""CLAUDE_MAX_FILE_OPERATIONS across nodes: file slots held as PostgreSQL advisory locks (a real server)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from runtime.cluster import ClusterFileSlots
from tests.cluster import fresh_database


@pytest.fixture
def conninfo(postgres_url):
    return {"conninfo": fresh_database(postgres_url)}


async def test_one_slot_is_held_at_a_time_across_three_nodes_and_waiters_go_first_come_first_served(conninfo):
    nodes = [ClusterFileSlots(conninfo=conninfo, limit=1) for _ in range(3)]
    holding: list[str] = []
    most = 0
    order: list[str] = []
    told: list[str] = []

    async def edit(name: str, slots: ClusterFileSlots) -> None:
        nonlocal most
        await slots.acquire(owner=name, on_wait=lambda: told.append(name))
        order.append(name)
        holding.append(name)
        most = max(most, len(holding))
        await asyncio.sleep(0.05)
        holding.remove(name)
        slots.release(owner=name)

    await nodes[0].acquire(owner="first")
    waiters = []
    for index, name in enumerate(["n1", "n2", "n0", "n1b", "n2b"]):
        waiters.append(asyncio.create_task(edit(name, nodes[(index + 1) % 3])))
        while name not in told:  # each is in line before the next asks
            await asyncio.sleep(0.01)
    nodes[0].release(owner="first")
    await asyncio.gather(*waiters)
    assert most == 1
    assert order == ["n1", "n2", "n0", "n1b", "n2b"]


async def test_a_dead_nodes_slot_comes_free(conninfo):
    alive = ClusterFileSlots(conninfo=conninfo, limit=1)
    # Another node holds the only slot on its connection, then dies (the connection is gone).
    dead = await psycopg.AsyncConnection.connect(**conninfo, autocommit=True)
    await dead.execute("SELECT pg_advisory_lock(%s::int, 0)", (0x66696C65,))
    waiting = asyncio.create_task(alive.acquire(owner="me"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    assert alive.status().waiting == 1
    await dead.close()
    await asyncio.wait_for(waiting, 10)
    assert alive.status().active == 1
    alive.release(owner="me")
