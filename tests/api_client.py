"""An HTTP API caller for tests (an IDE plugin, a CI job): it sends its headers with every call.

AsyncClient(headers=...) does not reach an ASGI view's request.headers here, so the headers
go with each request instead. Each request's ASGI scope carries the engine, as the server's
composition root puts it there (project/asgi.py).
"""

from __future__ import annotations

from django.test import AsyncClient


class EngineClient(AsyncClient):
    """Django's async test client, its requests' scope carrying ``engine``."""

    def __init__(self, *, engine=None, **defaults) -> None:
        super().__init__(**defaults)
        self.engine = engine

    async def request(self, **request):
        if self.engine is not None:
            request["engine"] = self.engine
        return await super().request(**request)


class ApiCaller:
    def __init__(self, headers: dict[str, str], *, engine=None) -> None:
        self.client, self.headers = EngineClient(engine=engine), headers

    @classmethod
    def with_token(cls, key: str, *, engine=None) -> ApiCaller:
        return cls({"Authorization": f"Bearer {key}"}, engine=engine)

    async def get(self, path: str):
        return await self.client.get(path, headers=self.headers)

    async def post(self, path: str, data: object = "", content_type: str = "application/json"):
        return await self.client.post(path, data=data, content_type=content_type, headers=self.headers)

    async def delete(self, path: str):
        return await self.client.delete(path, headers=self.headers)
