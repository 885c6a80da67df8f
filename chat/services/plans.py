"""Plan mode: a chat whose agent plans first and changes nothing until its person runs the plan.

The chat's mode is stored on the Session and reaches the CLI as its ``plan`` permission mode. In
that mode the model ends its planning with the ExitPlanMode tool, whose input the CLI fills with
the plan (read from the plan file the model wrote in the chat's own config folder). That call is
not asked of the person as a permission prompt: its tool call's card shows the plan with "Run this
plan", and the agent is told to wait. Running it leaves plan mode on the same warm process (the
engine changes the permission mode through the control protocol: no restart) and sends a
follow-up turn.
"""

from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction

from runtime import Engine

from ..live import notify
from ..models import PLAN_MODE, Event, Session, Turn
from . import turns
from .handler import EXIT_PLAN_TOOL

# The follow-up turn "Run this plan" sends, as the person's words.
RUN_PLAN_MESSAGE = "Go ahead with the plan."


class PlanRefused(Exception):
    """The plan cannot be run; the text says why and what to do."""


def set_plan_mode(*, session: Session, on: bool) -> Session:
    """Plan first (``on``) or work as the project's permission mode says, from the next turn on."""
    if session.is_archived:
        raise PlanRefused("This chat is archived and read-only. Press Restore to continue it.")
    if session.kind != Session.Kind.CHAT:
        raise PlanRefused("Plan mode is for chats; a task runs with its own permission mode.")
    session.permission_mode = PLAN_MODE if on else ""
    session.save(update_fields=["permission_mode"])
    return session


@sync_to_async
def _take_plan(session_id: uuid.UUID, user: User, event_id: int) -> Session:
    """Mark the plan as run and leave plan mode, once: a second press (another tab) is refused."""
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id, owner=user)
        event = (
            Event.objects.select_for_update()
            .filter(pk=event_id, turn__session=session, kind=Event.Kind.TOOL_USE, name=EXIT_PLAN_TOOL)
            .first()
        )
        if event is None:
            raise PlanRefused("That plan is not in this chat any more. Reload the page.")
        if event.data.get("ran"):
            raise PlanRefused("This plan has been run already.")
        later = Turn.objects.filter(session=session, id__gt=event.turn_id).exclude(status=Turn.Status.STOPPED)
        if later.exists():
            raise PlanRefused(
                "The chat went on after this plan. Switch plan mode off and say what to do, or ask for a new plan."
            )
        if session.is_archived:
            raise PlanRefused("This chat is archived and read-only. Press Restore to continue it.")
        event.data = {**event.data, "ran": True}
        event.save(update_fields=["data"])
        session.permission_mode = ""
        session.save(update_fields=["permission_mode"])
        return session


async def run_plan(*, engine: Engine, session_id: uuid.UUID, user: User, event_id: int) -> Turn:
    """Leave plan mode and send the follow-up turn that carries the plan out."""
    session = await _take_plan(session_id, user, event_id)
    await notify.session_changed(session)
    return await turns.submit_message(engine=engine, session_id=session_id, user=user, text=RUN_PLAN_MESSAGE)
