"""Live sessions a test starts, on a fake CLI or the real one, all closed at the test's end."""

from __future__ import annotations

import asyncio

from drivers.claude import LiveSession, LiveSpec


class Sessions:
    def __init__(self) -> None:
        self._started: list[LiveSession] = []

    async def start(self, spec: LiveSpec, *, within: float) -> LiveSession:
        session = LiveSession(spec)
        self._started.append(session)  # closed at the end even if its start fails
        async with asyncio.timeout(within):
            await session.start()
        return session

    async def close_all(self) -> None:
        for session in self._started:
            await session.close()
