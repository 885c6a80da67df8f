"""Every answer of the API that is not a success is JSON ``{"error": "..."}`` with its status.

:func:`install` registers the API's exception handlers: one for every validation error (the
schemas' refusals, :mod:`api.schemas`), the domain errors of the services mapped to statuses,
bearer-token failures, a body too large, and anything unexpected (a JSON 500, never an HTML
page). :func:`json_errors` does the same for the answers ninja gives outside an operation
(another method: 405 with ``Allow``; its root: 404), and :func:`not_found` answers any other
path under /api/.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from chat.projects import ProjectRefused
from chat.services import disk
from chat.services.turns import RoleRefused, TurnRefused
from runtime import Engine
from tasks.services import NotAllowed, TaskNotFound, TaskRefused

from .schemas import REFUSED

log = logging.getLogger(__name__)

NO_TOKEN = "Send your API token as 'Authorization: Bearer <token>'; it is on your settings page."
BAD_TOKEN = "This API token is not valid (it may have been regenerated). Copy the current one from your settings page."
DESCRIBED = "The API is described at /api/openapi.json."


class ApiRequest(HttpRequest):
    """A request to an operation behind the bearer token: ``auth`` is the token's user; ``engine`` the
    engine the composition root handed down (set by ``chat.web.engine.EngineMiddleware``)."""

    auth: User
    engine: Engine


class ApiError(Exception):
    """An answer other than success, with its status and headers."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Unauthorized(ApiError):
    def __init__(self, message: str = NO_TOKEN, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer realm="api", error="invalid_token"' if invalid_token else 'Bearer realm="api"'
        super().__init__(401, message, headers={"WWW-Authenticate": challenge})


def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status, headers=headers)


# What the services refuse, as HTTP statuses (NotAllowed is a TaskRefused: it comes first).
DOMAIN_ERRORS: list[tuple[type[Exception], int, Callable[[Exception], str]]] = [
    (TaskNotFound, 404, lambda exc: f"There is no task {exc}."),
    (ProjectRefused, 403, str),
    (NotAllowed, 403, str),
    (RoleRefused, 403, str),
    (TaskRefused, 409, str),
    (TurnRefused, 409, str),
]


def invalid(request: HttpRequest, exc: Any) -> JsonResponse:
    """Bad input (a :class:`ValidationError`): the refusals' texts, the highest of their statuses
    (413 over 400), and for the tasks API each field's reason."""
    status, by_field = 400, False
    texts: list[str] = []
    fields: dict[str, str] = {}
    for found in exc.errors:
        context = found.get("ctx") or {}
        if found.get("type") == REFUSED:
            text = context["text"]
            status = max(status, context["status"])
            by_field = by_field or context.get("fields_in_errors", False)
            if context.get("field"):
                fields[context["field"]] = f"{fields[context['field']]} {text}" if context["field"] in fields else text
        elif found["loc"][:1] == ("body",) and len(found["loc"]) <= 2:
            text = "The body must be a JSON object."  # no body at all
        else:
            text = f"{'.'.join(str(part) for part in found['loc'][1:])}: {found['msg']}."
        if text not in texts:
            texts.append(text)
    return error(status, " ".join(texts), **({"fields": fields} if by_field else {}))


def unexpected(request: HttpRequest, exc: Any) -> JsonResponse:
    log.error("API call %s %s failed", request.method, request.path, exc_info=exc)
    if (full := disk.explain(exc, what="what you sent")) is not None:
        return error(disk.STATUS, full)
    return error(
        500,
        f"The server failed ({type(exc).__name__}); the details are in its log. Try again; if it "
        "repeats, tell an admin.",
    )


def install(api: NinjaAPI) -> None:
    """Register the API's exception handlers (the most specific class of an error wins)."""
    api.add_exception_handler(ApiError, _api_error)
    api.add_exception_handler(AuthenticationError, lambda request, exc: error(401, NO_TOKEN, Unauthorized().headers))
    api.add_exception_handler(ValidationError, invalid)
    api.add_exception_handler(
        RequestDataTooBig,
        lambda request, exc: error(
            413, f"The request body is too large; a message may hold {settings.CLAUDE_MAX_MESSAGE_CHARS:,} characters."
        ),
    )
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(Http404, lambda request, exc: error(404, f"Not found. {DESCRIBED}"))
    for exc_class, status, text in DOMAIN_ERRORS:
        api.add_exception_handler(exc_class, functools.partial(_domain_error, status=status, text=text))
    api.add_exception_handler(Exception, unexpected)


def _api_error(request: HttpRequest, exc: Any) -> JsonResponse:
    return error(exc.status, exc.message, exc.headers)


def _http_error(request: HttpRequest, exc: Any) -> JsonResponse:
    return error(exc.status_code, exc.message)


def _domain_error(request: HttpRequest, exc: Any, *, status: int, text: Callable[[Exception], str]) -> JsonResponse:
    return error(status, text(exc))


def _as_json(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if isinstance(response, HttpResponseNotAllowed):
        allowed = sorted(method.strip() for method in response["Allow"].split(","))
        return error(
            405, f"Use {' or '.join(allowed)} for this endpoint, not {request.method}.", {"Allow": ", ".join(allowed)}
        )
    return response


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view, with ninja's plain-text 405 and its root's Http404 answered as JSON errors.
    Exempt from CSRF like the API's operations: calls carry a bearer token, not cookies."""
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return _as_json(request, await view(request, *args, **kwargs))
            except Http404:
                return not_found(request)
    else:

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return _as_json(request, view(request, *args, **kwargs))
            except Http404:
                return not_found(request)

    return csrf_exempt(wrapper)


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    return error(404, f"There is no API endpoint at {request.path}. {DESCRIBED}")
