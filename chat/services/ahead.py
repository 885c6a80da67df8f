"""Starting a chat's CLI process while its member is still typing, so that the message finds it warm.

A chat's page (and the New chat page, for the chat its first message will make) asks the engine to
start the process ahead (:meth:`runtime.Engine.prewarm`); the engine asks here how the chat's next
turn would start it. It must be exactly that process: the spec comes from the same function as the
turn's (:func:`execution.spec_of`, with a chat page's options), so a turn takes it as its own.

A new chat's process runs with ``--session-id``: the CLI writes no transcript before the first
message, so a process that never got one leaves the id free, and the chat's real first turn (or a
later process) starts with it as if nothing had been started.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections

from drivers import claude
from drivers.claude import LiveSpec
from drivers.egress import EgressProxy
from runtime import Engine

from .. import projects
from ..models import Session
from . import agents, mcp
from .execution import TurnOptions, spec_of


@dataclass(frozen=True)
class NewChat:
    """A chat its first message will make (the New chat page): where it will work and its model."""

    project: str = ""  # a project key; "" the member's own folder
    model: str = ""  # one of CLAUDE_MODELS (checked), "" the CLI's default


async def start_ahead(*, engine: Engine, session_id: uuid.UUID, owner: User, new: NewChat | None = None) -> bool:
    """Start the process of the member's chat ``session_id`` (``new``: one not saved yet) before its
    next message, if the engine has room; True if one is being started."""
    return await engine.prewarm(session=str(session_id), owner=owner.pk, draft=new)


def spec_ahead(*, session_id: str, owner_id: int, new: object, egress: EgressProxy | None) -> LiveSpec | None:
    """How the next chat turn of ``session_id`` would start its process; None when none is to be
    started ahead: another member's chat, a task's, an archived one, a folder not made yet."""
    try:
        return _spec_ahead(session_id=session_id, owner_id=owner_id, new=new, egress=egress)
    finally:
        connections.close_all()  # (a thread of asgiref's pool, which keeps no connection)


def _spec_ahead(*, session_id: str, owner_id: int, new: object, egress: EgressProxy | None) -> LiveSpec | None:
    session = Session.objects.filter(pk=session_id).first()
    if session is None:
        if not isinstance(new, NewChat):
            return None
        owner = User.objects.filter(pk=owner_id, is_active=True).first()
        if owner is None:
            return None
        try:
            project = projects.project_for(owner, new.project)
        except projects.ProjectRefused:
            return None  # the message will say so
        if not project.path.is_dir():
            return None  # the first chat makes the member's folder (a repository): not done ahead
        # As create_session will make it.
        session = Session(id=uuid.UUID(session_id), owner_id=owner_id, workdir=str(project.path), model=new.model)
        session.project = project.stored_key
        session.config_dir = str(agents.config_folder(owner_id=owner_id, session_id=session_id))
        session.transcript_path = str(claude.transcript_path(session.config_dir, session.workdir, session_id))
    elif session.owner_id != owner_id or session.kind != Session.Kind.CHAT or session.is_archived:
        return None
    try:
        return spec_of(session, TurnOptions(), egress, servers=mcp.setup_for(session))
    except agents.SandboxUnavailable:
        return None  # the turn says what an admin must do


spec_ahead_async = sync_to_async(spec_ahead, thread_sensitive=False)
