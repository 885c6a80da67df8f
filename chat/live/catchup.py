"""What a chat page that (re)connects its websocket lacks, worked out from what it says it shows.

The page names, in the socket's URL, the last turn and the last event it shows and the turns it
shows unfinished (``?turn=12&event=345&unfinished=12``). The server then sends only the turns
added since, and the unfinished turns whole (their status and streamed text may have moved on).
A turn the page shows finished never changes again: its events are all saved before its status
is, and sent in that order. A page that says nothing usable, or lacks more than a page's worth
(or events beyond ``MAX_EVENTS``), gets the latest turns whole instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from .. import selectors
from ..models import Session, Turn
from . import fragments, rendered

# Beyond this many events to send, one whole refresh is cheaper for both sides.
MAX_EVENTS = 200
MAX_UNFINISHED = 20
_IDS = re.compile(r"\d{1,18}(?:,\d{1,18})*")


@dataclass(frozen=True)
class Since:
    """What the page shows: its last turn and event (0: none) and its unfinished turns."""

    turn: int
    event: int
    unfinished: tuple[int, ...] = ()

    @classmethod
    def parse(cls, query_string: bytes | str) -> Since | None:
        """From the socket's query string; None when it does not say (or says nonsense)."""
        if isinstance(query_string, bytes):
            query_string = query_string.decode("latin-1")
        query = {name: values[-1] for name, values in parse_qs(query_string).items()}
        turn, event, unfinished = query.get("turn", ""), query.get("event", ""), query.get("unfinished", "")
        if not (turn.isdigit() and event.isdigit() and len(turn) <= 18 and len(event) <= 18):
            return None
        if unfinished and not _IDS.fullmatch(unfinished):
            return None
        ids = tuple(int(i) for i in unfinished.split(",")) if unfinished else ()
        if len(ids) > MAX_UNFINISHED:
            return None
        return cls(turn=int(turn), event=int(event), unfinished=ids)


@dataclass(frozen=True)
class CatchUp:
    """The fragments to send, and the last turn and event the page shows once it has them."""

    html: str
    turn: int
    event: int
    whole: bool  # the latest turns were sent whole


def _last_event(turns: list[Turn]) -> int:
    return max((event.pk for turn in turns for event in turn.events.all()), default=0)


def _state(session: Session, reader: fragments.Reader | None) -> str:
    """The chat's state; for its owner also the memory its agent read, which may have been read
    between the page's load and its socket's joining (a share page does not show it)."""
    state = fragments.session_state(session, reader=reader)
    return state if reader is not None else state + fragments.memory_note(session)


def refresh(session: Session, *, may_answer: bool, reader: fragments.Reader | None = None) -> CatchUp:
    """The latest turns whole, as the page shows them when it loads."""
    # A reader's turns hide the server's paths: rendered for them, never from the owner's cache.
    page = selectors.latest_turns(session=session, events=reader is not None)
    if reader is None:
        rendered.prerender(page.turns)
    html = fragments.turns_refreshed(session, page, may_answer=may_answer, reader=reader) + _state(session, reader)
    return CatchUp(
        html=html,
        turn=max((t.pk for t in page.turns), default=0),
        event=selectors.last_event_id(turn_ids=[t.pk for t in page.turns]),
        whole=True,
    )


def catch_up(
    *, session: Session, since: Since | None, may_answer: bool, reader: fragments.Reader | None = None
) -> CatchUp:
    """What the page lacks since ``since`` (everything, when that is unknown or too much);
    ``may_answer``: whether its person gets the answer buttons of open permission prompts;
    ``reader``: the page is a share link's."""
    if since is None:
        return refresh(session, may_answer=may_answer, reader=reader)
    recent = selectors.latest_turn_ids(session=session, limit=selectors.RECENT_TURNS + 1)
    new = [pk for pk in recent if pk > since.turn]
    unfinished = [pk for pk in since.unfinished if pk <= since.turn]
    if len(new) > selectors.RECENT_TURNS or any(pk not in recent for pk in unfinished):
        return refresh(session, may_answer=may_answer, reader=reader)
    whole = selectors.turns_with_events(session=session, ids=new + unfinished)
    if sum(len(turn.events.all()) for turn in whole) > MAX_EVENTS:
        return refresh(session, may_answer=may_answer, reader=reader)
    parts = [
        (fragments.turn_replaced if turn.pk in unfinished else fragments.turn_appended)(
            turn, session, may_answer=may_answer, reader=reader
        )
        for turn in sorted(whole, key=lambda turn: turn.pk not in unfinished)
    ]
    parts.append(_state(session, reader))
    return CatchUp(
        html="".join(parts), turn=max([since.turn, *new]), event=max(since.event, _last_event(whole)), whole=False
    )
