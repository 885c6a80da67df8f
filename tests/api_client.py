"""An HTTP API caller for tests (an IDE plugin, a CI job): it sends its headers with every call.

AsyncClient(headers=...) does not reach an ASGI view's request.headers here, so the headers
go with each request instead.
"""

from __future__ import annotations

from django.test import AsyncClient


class ApiCaller:
    def __init__(self, headers: dict[str, str]) -> None:
        self.client, self.headers = AsyncClient(), headers

    @classmethod
    def with_token(cls, key: str) -> ApiCaller:
        return cls({"Authorization": f"Bearer {key}"})

    async def get(self, path: str):
        return await self.client.get(path, headers=self.headers)

    async def post(self, path: str, data: object = "", content_type: str = "application/json"):
        return await self.client.post(path, data=data, content_type=content_type, headers=self.headers)

    async def delete(self, path: str):
        return await self.client.delete(path, headers=self.headers)
