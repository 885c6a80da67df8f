"""The chat API for IDE plugins: one chat turn per call, and the state of the CLI pool.

A turn goes to the same engine as the browser's (``request.engine``), so API and browser messages
to one chat queue behind each other and the chat page shows both. The request
is checked by :class:`ChatRequest` before anything is made; what goes wrong later (a busy chat,
a timeout, a CLI error) is an :class:`~api.errors.ApiError` with its status.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError
from ninja import Router, Schema
from pydantic import AfterValidator, Field

from chat import projects
from chat.models import Event, Session, Turn
from chat.services import budgets, chats, turns
from members import roles
from runtime import Engine

from .errors import ApiError, ApiRequest
from .schemas import Error, FromSettings, IsoTime, LimitedText, Refusal, Request, refused

HOST = socket.gethostname()

router = Router(tags=["chat"])


# ---------------------------------------------------------------------------------------
# Schemas


def _unknown_project(key: Any) -> str:
    shown = repr(key[:64]) if isinstance(key, str) else f"of type {type(key).__name__}"
    return (
        f"Unknown projectKey {shown}. Known keys: {', '.join(projects.known_keys())} "
        "(leave projectKey out for your own folder)."
    )


def _known_project(key: str) -> str:
    if key not in projects.known_keys():
        raise refused(_unknown_project(key))
    return key


ProjectKey = Annotated[str, AfterValidator(_known_project), FromSettings(lambda: {"enum": projects.known_keys()})]


def _not_offered(name: Any) -> str:
    shown = repr(name[:64]) if isinstance(name, str) else f"of type {type(name).__name__}"
    offered = chats.model_choices()
    if not offered:
        return f"model {shown} cannot be chosen: this server offers no choice of model (CLAUDE_MODELS is empty). Leave model out."
    return f"model {shown} is not a model this server offers. Send one of: {', '.join(offered)} (or leave model out)."


def _offered_model(name: str) -> str:
    # Only what the page's picker offers: a value never reaches the CLI unless an admin listed it.
    if name not in chats.model_choices():
        raise refused(_not_offered(name))
    return name


Model = Annotated[str, AfterValidator(_offered_model), FromSettings(lambda: {"enum": chats.model_choices()})]


class ChatRequest(Request):
    not_an_object = 'The body must be a JSON object: {"sessionId": "<uuid>", "message": "...", "projectKey": "..."}.'

    sessionId: Annotated[
        uuid.UUID,
        Field(description="Chosen by the client; any case, answered in lower case."),
        Refusal(
            "sessionId must be a UUID such as 0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d: pick a new "
            "random one for a new chat, and send the same one to continue it."
        ),
    ]
    message: Annotated[
        LimitedText,
        Field(description="The text to ask (at most CLAUDE_MAX_MESSAGE_CHARS characters)."),
        Refusal("message is missing or empty: send the text to ask as a JSON string."),
    ]
    projectKey: Annotated[
        ProjectKey | None,
        Refusal(_unknown_project),
        Field(
            description="Where a new chat works: 'default' (left out) is your own folder, other keys are shared "
            "projects (CLAUDE_PROJECTS) an admin opened to you (403 otherwise). A chat keeps the one it "
            "was created in: another key answers 409, leaving it out continues."
        ),
    ] = None
    model: Annotated[
        Model | None,
        Refusal(_not_offered),
        Field(
            description="One of CLAUDE_MODELS: a new chat starts with it, an existing one switches to it (as the "
            "page's picker does). Left out: a new chat gets the first of them, an existing one keeps its own."
        ),
    ] = None


class ChatResponse(Schema):
    sessionId: uuid.UUID
    answer: str = Field(description="The assistant's text blocks of this turn, joined by blank lines.")
    workerId: str = Field(description="host:pid of the Claude Code process that ran the turn.")
    timestamp: int = Field(
        description="When the turn finished, in milliseconds since the Unix epoch (UTC).", examples=[1767602894231]
    )
    finishedAt: IsoTime = Field(description="The same moment in ISO 8601, with its UTC offset.")


class PoolStatus(Schema):
    active: int = Field(description="Claude Code processes running now.")
    limit: int = Field(description="At most this many at once (CLAUDE_MAX_CONCURRENT).")
    waiting: int = Field(description="Turns waiting for a free process now.")
    totalRequests: int = Field(description="Turns that asked for a process since the server started.")


@dataclass(frozen=True)
class Answer:
    session_id: uuid.UUID
    answer: str
    worker_id: str
    finished_at: datetime

    def response(self) -> ChatResponse:
        return ChatResponse(
            sessionId=self.session_id,
            answer=self.answer,
            workerId=self.worker_id,
            timestamp=int(self.finished_at.timestamp() * 1000),
            finishedAt=self.finished_at,
        )


# ---------------------------------------------------------------------------------------
# Running a message as a turn


def _project_named(key: str) -> str:
    return f"project {key!r}" if key else "your own folder"


async def open_session(
    *, user: User, session_id: uuid.UUID, project_key: str | None = None, model: str | None = None
) -> Session:
    """The caller's chat with this id, made in the chosen project on first use; ``model`` (one of
    CLAUDE_MODELS, checked by the schema) is its model from now on."""
    project = await sync_to_async(projects.project_for)(user, project_key)
    session = await Session.objects.filter(pk=session_id).afirst()
    if session is None:
        try:
            session = await sync_to_async(chats.create_session)(
                owner=user, project=project, session_id=session_id, model=model
            )
        except IntegrityError:
            # Two first calls with one id at once: the other one made it.
            session = await Session.objects.aget(pk=session_id)
    if session.owner_id != user.pk:
        # The same answer as for an id nobody has: whose chats exist is nobody else's business.
        raise ApiError(404, f"Session {session_id} was not found for this token. Use a new random UUID for a new chat.")
    if project_key is not None and session.project != project.stored_key:
        raise ApiError(
            409,
            f"Session {session_id} was started in {_project_named(session.project)}, and its working "
            f"directory cannot change (Claude Code keys a session's memory by it). Send projectKey "
            "of that project (or leave it out), or use a new sessionId for this project.",
        )
    if session.is_archived:
        raise ApiError(
            409, f"Session {session_id} is archived. Open it in the browser and press Restore, or use a new sessionId."
        )
    if model is not None and session.model != model:
        session = await sync_to_async(chats.set_model)(session=session, model=model)
    return session


def _busy_reason(turn: Turn, wait: float, limit: int) -> tuple[int, str, str]:
    """HTTP status, API error and the note kept on the withdrawn turn in the chat."""
    if turn.status == Turn.Status.WAITING:
        return (
            503,
            f"All {limit} Claude Code processes stayed busy for {wait:g} s, so the message "
            "was not run. Send it again in a minute.",
            f"Not run: every Claude Code process was busy for {wait:g} s and the API caller gave up.",
        )
    return (
        409,
        f"Session {turn.session_id} was still busy with earlier messages after {wait:g} s, so this message "
        "was not run. Send it again when they have finished.",
        f"Not run: earlier messages of this chat were still running after {wait:g} s and the API caller gave up.",
    )


async def _take_back(engine: Engine, submitting: asyncio.Future[Turn]) -> None:
    """Once the message is saved and submitted (that finishes even if the caller left), withdraw it
    unless it has started."""
    try:
        turn = await submitting
    except turns.TurnRefused:
        return
    await turns.withdraw_turn(engine=engine, turn=turn, reason="Not run: the API caller hung up before it started.")


async def _wait_until_finished(engine: Engine, turn: Turn) -> Turn:
    """Wait for the turn's end; one that has not started within the busy wait is withdrawn."""
    wait = settings.CLAUDE_API_BUSY_WAIT
    try:
        await asyncio.wait_for(asyncio.shield(engine.wait_started(turn=turn.pk)), wait)
    except TimeoutError:
        waiting = await Turn.objects.aget(pk=turn.pk)
        status, error, note = _busy_reason(waiting, wait, (await engine.pool_status()).limit)
        if await turns.withdraw_turn(engine=engine, turn=waiting, reason=note):
            raise ApiError(status, error, headers={"Retry-After": "30"}) from None
    await engine.wait_ended(turn=turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


def _failure(turn: Turn) -> ApiError:
    if turn.status == Turn.Status.ERROR and budgets.is_refusal(turn.error):
        return ApiError(402, turn.error)
    match turn.status:
        case Turn.Status.TIMEOUT:
            return ApiError(504, turn.error)
        case Turn.Status.STOPPED:
            return ApiError(
                409, "The turn was stopped from the chat page before it finished; what came so far is in the chat."
            )
        case Turn.Status.INTERRUPTED:
            return ApiError(503, turn.error)
        case _:
            return ApiError(502, turn.error or "Claude Code failed without saying why.")


async def ask(
    *,
    engine: Engine,
    user: User,
    session_id: uuid.UUID,
    message: str,
    project_key: str | None = None,
    model: str | None = None,
) -> Answer:
    """Run one message as a turn of the caller's chat and return the assistant's answer.

    The arguments are checked at the boundary (:class:`ChatRequest`); a chat that refuses the
    message raises :class:`~chat.services.turns.TurnRefused`, anything else an ApiError."""
    if not await sync_to_async(roles.may_run)(user):
        raise turns.RoleRefused(roles.VIEWER_REFUSAL)  # before a chat is made for it
    session = await open_session(user=user, session_id=session_id, project_key=project_key, model=model)
    # Nobody is there to answer a permission prompt: the project's permission mode decides alone
    # (a turn from the API runs that way, by its origin).
    submitting = asyncio.ensure_future(
        turns.submit_message(engine=engine, session_id=session.id, user=user, text=message, origin=Turn.Origin.API)
    )
    try:
        turn = await _wait_until_finished(engine, await asyncio.shield(submitting))
    except asyncio.CancelledError:
        # The caller hung up: a turn that has not started is taken back, a running one goes on
        # (its answer stays in the chat).
        await asyncio.shield(_take_back(engine, submitting))
        raise
    if turn.status != Turn.Status.DONE:
        raise _failure(turn)
    texts = [e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT).order_by("id")]
    return Answer(
        session_id=session.id,
        answer="\n\n".join(texts),
        worker_id=f"{HOST}:{turn.pid}",
        finished_at=turn.finished_at or turn.created_at,
    )


# ---------------------------------------------------------------------------------------
# Operations

CHAT_DESCRIPTION = """\
The first call with a sessionId creates the chat (owned by the token's user, listed in their chats,
titled by the message); later calls continue it with its memory.

Turns of one chat run one at a time: a call waits behind earlier ones, but if its turn has not
started within CLAUDE_API_BUSY_WAIT seconds it is withdrawn (kept in the chat as not run) and the
call answers 409 (chat busy) or 503 (all Claude Code processes busy), with `Retry-After`. A running
turn is not stopped if the caller hangs up; its answer stays in the chat.

A member past a monthly budget (theirs, or the project's) gets 402 naming it, how much was used
and who can raise it; the message stays in the chat, not run. A viewer runs nothing: 403.

The API cannot answer permission prompts: the turn runs with the project's configured permission
mode (CLAUDE_PERMISSION_MODE, `acceptEdits` unless set otherwise), and a tool call that mode does
not allow is refused, not asked about.
"""


@router.post(
    "/analysis/chat",
    url_name="chat",
    operation_id="chat",
    summary="Send one message to a chat and wait for the answer",
    description=CHAT_DESCRIPTION,
    response={
        200: ChatResponse,
        400: Error,
        401: Error,
        402: Error,
        403: Error,
        404: Error,
        405: Error,
        409: Error,
        413: Error,
        500: Error,
        502: Error,
        503: Error,
        504: Error,
    },
)
async def chat(request: ApiRequest, body: ChatRequest) -> ChatResponse:
    answer = await ask(
        engine=request.engine,
        user=request.auth,
        session_id=body.sessionId,
        message=body.message,
        project_key=body.projectKey,
        model=body.model,
    )
    return answer.response()


@router.get(
    "/claude-code/pool/status",
    url_name="pool-status",
    operation_id="poolStatus",
    summary="How busy the Claude Code processes of this server are",
    response={200: PoolStatus, 401: Error, 405: Error, 500: Error},
)
async def pool_status(request: ApiRequest) -> PoolStatus:
    status = await request.engine.pool_status()
    return PoolStatus(active=status.active, limit=status.limit, waiting=status.waiting, totalRequests=status.total)
