"""The HTTP API for IDE plugins: one chat turn per call, and the state of the CLI pool.

Calls authenticate with ``Authorization: Bearer <token>`` (see :mod:`chat.tokens`); there
are no cookies, so CSRF does not apply. A turn runs on the server's event loop through the
same runner as the browser's, so API and browser messages to one chat queue behind each
other and the chat page shows both. Every error is ``{"error": "..."}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import runtime
from chat.models import Event, Session, Turn
from chat.services import chats, turns
from chat.services.tokens import user_for_token
from drivers import claude

from .openapi import openapi_document

HOST = socket.gethostname()


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Answer:
    session_id: str
    answer: str
    worker_id: str
    timestamp: datetime


# ---------------------------------------------------------------------------------------
# Services


def parse_session_id(value: object) -> str:
    if not isinstance(value, str) or not claude.is_uuid(value):
        raise ApiError(400, "sessionId must be a UUID such as 0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d: "
                            "pick a new random one for a new chat, and send the same one to continue it.")
    return value.lower()


def check_message(value: object) -> str:
    limit = settings.CLAUDE_MAX_MESSAGE_CHARS
    if isinstance(value, str) and len(value) > limit:
        raise ApiError(413, f"message is {len(value):,} characters long; the limit is {limit:,}. Send less text.")
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "message is missing or empty: send the text to ask as a JSON string.")
    return value


def project_dir(key: object) -> Path:
    projects: dict[str, Path] = settings.CLAUDE_PROJECTS
    if isinstance(key, str) and key in projects:
        return Path(projects[key])
    shown = repr(key[:64]) if isinstance(key, str) else f"of type {type(key).__name__}"
    raise ApiError(400, f"Unknown projectKey {shown}. Known keys: {', '.join(sorted(projects))} "
                        "(leave projectKey out for the default project).")


def _project_key_of(workdir: str) -> str:
    for key, path in settings.CLAUDE_PROJECTS.items():
        if Path(path) == Path(workdir):
            return f"project {key!r}"
    return "another working directory"


async def open_session(*, user, session_id: str, project_key: object = None) -> Session:
    """The caller's chat with this id, made in the chosen project on first use."""
    workdir = project_dir("default" if project_key is None else project_key)
    session = await Session.objects.filter(pk=session_id).afirst()
    if session is None:
        try:
            session = await sync_to_async(chats.create_session)(owner=user, workdir=workdir, session_id=uuid.UUID(session_id))
        except IntegrityError:
            # Two first calls with one id at once: the other one made it.
            session = await Session.objects.aget(pk=session_id)
    if session.owner_id != user.pk:
        # The same answer as for an id nobody has: whose chats exist is nobody else's business.
        raise ApiError(404, f"Session {session_id} was not found for this token. Use a new random UUID for a new chat.")
    if project_key is not None and Path(session.workdir) != workdir:
        raise ApiError(409, f"Session {session_id} was started in {_project_key_of(session.workdir)}, and its working "
                            f"directory cannot change (Claude Code keys a session's memory by it). Send projectKey "
                            "of that project (or leave it out), or use a new sessionId for this project.")
    if session.is_archived:
        raise ApiError(409, f"Session {session_id} is archived. Open it in the browser and press Restore, "
                            "or use a new sessionId.")
    return session


def _busy_reason(turn: Turn, wait: float) -> tuple[int, str, str]:
    """HTTP status, API error and the note kept on the withdrawn turn in the chat."""
    if turn.status == Turn.Status.WAITING:
        return (503, f"All {runtime.current().pool.limit} Claude Code processes stayed busy for {wait:g} s, so the message "
                     "was not run. Send it again in a minute.",
                f"Not run: every Claude Code process was busy for {wait:g} s and the API caller gave up.")
    return (409, f"Session {turn.session_id} was still busy with earlier messages after {wait:g} s, so this message "
                 "was not run. Send it again when they have finished.",
            f"Not run: earlier messages of this chat were still running after {wait:g} s and the API caller gave up.")


async def _wait_until_finished(submitted: turns.Submitted) -> Turn:
    """Wait for the turn's end; one that has not started within the busy wait is withdrawn."""
    wait = settings.CLAUDE_API_BUSY_WAIT
    ticket = submitted.ticket
    try:
        await asyncio.wait_for(asyncio.shield(ticket.started.wait()), wait)
    except TimeoutError:
        turn = await Turn.objects.aget(pk=submitted.turn.pk)
        status, error, note = _busy_reason(turn, wait)
        if await turns.withdraw_turn(submitted=submitted, reason=note):
            raise ApiError(status, error, headers={"Retry-After": "30"}) from None
    await ticket.wait()
    return await Turn.objects.aget(pk=submitted.turn.pk)


def _failure(turn: Turn) -> ApiError:
    match turn.status:
        case Turn.Status.TIMEOUT:
            return ApiError(504, turn.error)
        case Turn.Status.STOPPED:
            return ApiError(409, "The turn was stopped from the chat page before it finished; what came so far is in the chat.")
        case Turn.Status.INTERRUPTED:
            return ApiError(503, turn.error)
        case _:
            return ApiError(502, turn.error or "Claude Code failed without saying why.")


async def ask(*, user, session_id: object, message: object, project_key: object = None) -> Answer:
    """Run one message as a turn of the caller's chat and return the assistant's answer."""
    sid = parse_session_id(session_id)
    text = check_message(message)
    session = await open_session(user=user, session_id=sid, project_key=project_key)
    try:
        submitted = await turns.submit_message(session_id=session.id, user=user, text=text)
    except turns.TurnRefused as exc:
        raise ApiError(409, str(exc)) from exc
    try:
        turn = await _wait_until_finished(submitted)
    except asyncio.CancelledError:
        # The caller hung up: a turn that has not started is taken back, a running one goes on
        # (its answer stays in the chat).
        await asyncio.shield(turns.withdraw_turn(submitted=submitted, reason="Not run: the API caller hung up before it started."))
        raise
    if turn.status != Turn.Status.DONE:
        raise _failure(turn)
    texts = [e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT).order_by("id")]
    return Answer(session_id=sid, answer="\n\n".join(texts), worker_id=f"{HOST}:{turn.pid}",
                  timestamp=turn.finished_at or turn.created_at)


# ---------------------------------------------------------------------------------------
# Views


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


def api_view(*methods: str) -> Callable[[Callable[..., Awaitable[JsonResponse]]], Callable[..., Awaitable[JsonResponse]]]:
    """An async JSON endpoint: method check, bearer token, ApiError to a JSON error."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                return _error(405, f"Use {' or '.join(methods)} for this endpoint, not {request.method}.",
                              {"Allow": ", ".join(methods)})
            scheme, _, key = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                return _error(401, "Send your API token as 'Authorization: Bearer <token>'; it is on your settings page.",
                              {"WWW-Authenticate": 'Bearer realm="api"'})
            user = await user_for_token(key=key.strip())
            if user is None:
                return _error(401, "This API token is not valid (it may have been regenerated). Copy the current one "
                                   "from your settings page.", {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
            try:
                return await view(request, user, *args, **kwargs)
            except ApiError as exc:
                return _error(exc.status, exc.message, exc.headers)

        return wrapper

    return decorate


@api_view("POST")
async def chat(request: HttpRequest, user) -> JsonResponse:
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        return _error(413, f"The request body is too large; a message may hold {settings.CLAUDE_MAX_MESSAGE_CHARS:,} characters.")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, 'The body must be a JSON object: {"sessionId": "<uuid>", "message": "...", "projectKey": "..."}.')
    result = await ask(user=user, session_id=body.get("sessionId"), message=body.get("message"),
                       project_key=body.get("projectKey"))
    return JsonResponse({"sessionId": result.session_id, "answer": result.answer, "workerId": result.worker_id,
                         "timestamp": result.timestamp.isoformat()})


@api_view("GET")
async def pool_status(request: HttpRequest, user) -> JsonResponse:
    status = runtime.current().pool.status()
    return JsonResponse({"active": status.active, "limit": status.limit, "waiting": status.waiting,
                         "totalRequests": status.total})


@csrf_exempt
async def openapi(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        return _error(405, "Use GET for the API description.", {"Allow": "GET"})
    return JsonResponse(openapi_document(limit=settings.CLAUDE_MAX_MESSAGE_CHARS, projects=sorted(settings.CLAUDE_PROJECTS)))
