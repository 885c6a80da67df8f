"""The one NinjaAPI of /api/: the chat and tasks routers, bearer-token auth, the error handlers,
and the OpenAPI document generated from the same schemas the operations validate with."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.views.decorators.http import require_safe
from ninja import NinjaAPI, Swagger
from ninja.parser import Parser
from ninja.security import HttpBearer

from chat.services.tokens import user_for_token

from . import chat, errors, tasks
from .errors import BAD_TOKEN, NO_TOKEN, Unauthorized

DESCRIPTION = """\
Runs Claude Code turns and autonomous tasks for IDE plugins and scripts. Authenticate with the
token from your settings page (`Authorization: Bearer <token>`). Every error answers
`{"error": "..."}` with its status; the tasks API's bad input also carries `"fields": {name: reason}`.
"""


class BearerToken(HttpBearer):
    """``Authorization: Bearer <token>`` of an active user (see :mod:`chat.services.tokens`)."""

    async def __call__(self, request: HttpRequest) -> AbstractBaseUser:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized(NO_TOKEN)
        return await self.authenticate(request, key.strip())

    async def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser:
        if not token:
            raise Unauthorized(NO_TOKEN)
        user = await user_for_token(key=token)
        if user is None:
            raise Unauthorized(BAD_TOKEN, invalid_token=True)
        return user


class JsonBody(Parser):
    """A body that is not JSON reaches the schema as text, which refuses it as not a JSON object
    (the same answer as for any other body that is not one)."""

    def parse_body(self, request: HttpRequest) -> object:  # type: ignore[override]
        try:
            return super().parse_body(request)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return request.body.decode(errors="replace")


api = NinjaAPI(
    title="Claude Code chat API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    auth=BearerToken(),
    parser=JsonBody(),
    # The docs page's scripts and styles are ninja's own static files (no CDN): it works offline.
    # No validator badge: it would call validator.swagger.io.
    docs=Swagger(settings={"validatorUrl": None}),
    docs_decorator=require_safe,
)
api.add_router("", chat.router)
api.add_router("", tasks.router)
errors.install(api)
