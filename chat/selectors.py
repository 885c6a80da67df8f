"""The read side of chats: a person's list, and a chat's turns in pages.

Views, the websocket and fragments read through these; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Substr

from .models import Event, Session, SessionQuerySet, ShareLink, Turn

# A chat page shows this many of the latest turns; older ones load on demand.
RECENT_TURNS = 50
PREVIEW_CHARS = 300


# ---------------------------------------------------------------------------------------
# The list


def chat_list(*, user: AbstractBaseUser | AnonymousUser) -> SessionQuerySet:
    """The person's chats, newest activity first, with what a row of the list shows (searching
    them is :mod:`chat.search`'s)."""
    latest_turn = Turn.objects.filter(session=OuterRef("pk")).order_by("-created_at", "-id")
    latest_text = Event.objects.filter(turn=OuterRef("last_turn_id"), kind=Event.Kind.TEXT).order_by("-id")
    chats = (
        Session.objects.owned_by(user)
        .chats()
        .annotate(
            last_turn_id=Subquery(latest_turn.values("id")[:1]),
            last_prompt=Subquery(latest_turn.annotate(cut=Substr("prompt", 1, PREVIEW_CHARS)).values("cut")[:1]),
            shared=Exists(ShareLink.objects.live().filter(session=OuterRef("pk"))),
        )
        .annotate(last_text=Subquery(latest_text.annotate(cut=Substr("text", 1, PREVIEW_CHARS)).values("cut")[:1]))
        .order_by("-last_activity_at", "-created_at")
    )
    return chats


# The sidebar's recent chats on every page.
RECENT_CHATS = 12


def recent_chats(*, user_id: int | None) -> SessionQuerySet:
    """The member's latest chats, as the sidebar lists them (lazy: a page without a sidebar runs no query).
    Tasks' sessions are not chats."""
    return (
        Session.objects.filter(owner_id=user_id)
        .chats()
        .only("id", "title", "status", "last_activity_at")[:RECENT_CHATS]
    )


# ---------------------------------------------------------------------------------------
# Turns of one chat, latest first in pages


@dataclass(frozen=True)
class TurnPage:
    """Turns oldest first, and whether there are older ones to load."""

    turns: list[Turn]
    has_older: bool

    @property
    def first(self) -> Turn | None:
        return self.turns[0] if self.turns else None


def _before(turn: Turn) -> Q:
    # The bound on created_at alone lets the index seek straight to the anchor; the OR that
    # breaks ties on id then only looks at turns of that same instant.
    return Q(created_at__lte=turn.created_at) & (Q(created_at__lt=turn.created_at) | Q(id__lt=turn.id))


def latest_turns(
    *, session: Session, before: Turn | None = None, limit: int = RECENT_TURNS, events: bool = True
) -> TurnPage:
    """Up to ``limit`` turns (before ``before`` if given), oldest first, with their authors and
    events (unless ``events`` is false: :func:`chat.live.rendered.prerender` reads them only for
    the turns it must render)."""
    turns: QuerySet[Turn] = Turn.objects.filter(session=session)
    if before is not None:
        turns = turns.filter(_before(before))
    turns = turns.order_by("-created_at", "-id")
    if events:
        turns = turns.select_related("author").prefetch_related("events")
    # One more than shown tells whether older ones exist, without a second query.
    recent = list(turns[: limit + 1])
    shown = recent[:limit][::-1]
    return TurnPage(turns=shown, has_older=len(recent) > limit)


def turn_of(*, session: Session, turn_id: int) -> Turn | None:
    return Turn.objects.filter(pk=turn_id, session=session).first()


def has_pending_turn(*, session: Session) -> bool:
    return Turn.objects.filter(session=session).pending().exists()


# ---------------------------------------------------------------------------------------
# What a reconnecting page lacks (see chat.live.catchup)


def latest_turn_ids(*, session: Session, limit: int) -> list[int]:
    """Ids of the chat's latest ``limit`` turns, newest first (read from the index alone)."""
    return list(
        Turn.objects.filter(session=session).order_by("-created_at", "-id").values_list("id", flat=True)[:limit]
    )


def turns_with_events(*, session: Session, ids: list[int]) -> list[Turn]:
    """These turns of the chat, oldest first, with their events."""
    if not ids:
        return []
    return list(
        Turn.objects.filter(session=session, pk__in=ids)
        .select_related("author")
        .prefetch_related("events")
        .order_by("created_at", "id")
    )


def last_event_id(*, turn_ids: list[int]) -> int:
    """The newest event of these turns (0: none)."""
    last = Event.objects.filter(turn_id__in=turn_ids).aggregate(last=Max("id"))["last"] if turn_ids else None
    return last or 0
