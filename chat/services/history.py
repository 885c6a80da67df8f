"""Rewind and fork: a chat's conversation continued from an earlier turn.

Each turn records the last entry it left in the CLI's transcript (``Turn.cli_uuid``, from the
messages as they stream). **Rewind to here** makes the chat's next turn resume the conversation at
that entry (the CLI's ``--resume-session-at``, on a new process: the warm one is closed), so the
model no longer has the later turns; they stay on the page, marked as left behind. **Fork from
here** makes a new chat whose transcript is this one's up to that entry (copied through
:mod:`drivers.safefs` into the new chat's own CLI config folder, the session id rewritten), so it
starts from there and the original goes on untouched.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from drivers import claude, safefs
from runtime import Engine

from .. import projects
from ..live import fragments, notify
from ..models import Session, Turn
from ..selectors import latest_turns
from . import chats, todos
from .packing import ArchiveError, Transcript

# Transcripts hold whole tool results: a long chat's can be large, but not this large.
MAX_TRANSCRIPT_BYTES = 512 * 1024 * 1024


class HistoryRefused(Exception):
    """A rewind or fork that cannot be done; the text says why and what to do."""


def _point(session: Session, turn_id: int) -> Turn:
    turn = Turn.objects.filter(pk=turn_id, session=session).first()
    if turn is None:
        raise HistoryRefused("That message is not in this chat any more. Reload the page.")
    if turn.dropped_at is not None:
        raise HistoryRefused("A rewind left that message behind: the conversation no longer holds it.")
    if turn.is_pending or not claude.is_uuid(turn.cli_uuid):
        raise HistoryRefused(
            "The conversation cannot go back to that message: Claude Code recorded no point to resume at for it "
            "(it did not run, or ran before this was recorded)."
        )
    return turn


def _refuse_archived_or_busy(session: Session) -> None:
    if session.is_archived:
        raise HistoryRefused("This chat is archived and read-only. Press Restore to continue it.")
    if session.kind != Session.Kind.CHAT:
        raise HistoryRefused("Only a chat can be rewound or forked.")
    if Turn.objects.filter(session=session).pending().exists():
        raise HistoryRefused("A message of this chat is running or waiting. Stop it or let it finish, then try again.")


@sync_to_async
def _rewind(session_id: uuid.UUID, user: User, turn_id: int, files: bool) -> tuple[Session, int]:
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id, owner=user)
        _refuse_archived_or_busy(session)
        point = _point(session, turn_id)
        later = Turn.objects.filter(session=session, dropped_at__isnull=True, id__gt=point.pk).order_by("id")
        first = later.first()
        if first is None:
            raise HistoryRefused("That is the chat's latest message already: there is nothing to rewind.")
        if files and not claude.is_uuid(first.prompt_uuid):
            raise HistoryRefused(
                "The files cannot be put back to that point: the next message ran before this was recorded. "
                "Rewind without the files, or undo the changes by hand."
            )
        dropped = later.update(dropped_at=timezone.now())
        session.resume_at = point.cli_uuid
        # The files as they were when the first message left behind was sent, before its changes.
        session.restore_files_at = first.prompt_uuid if files else ""
        session.save(update_fields=["resume_at", "restore_files_at"])
        return session, dropped


async def rewind(*, engine: Engine, session_id: uuid.UUID, user: User, turn_id: int, files: bool = False) -> str:
    """Continue the conversation from after turn ``turn_id``: the later turns are left behind; with
    ``files``, so are the changes they made to files (put back when the next message runs). Says
    what was done."""
    session, dropped = await _rewind(session_id, user, turn_id, files)
    # The warm process holds the whole conversation: the next turn starts one at the rewind's point.
    await sync_to_async(chats.close_warm_process)(str(session.pk), engine=engine, wait=True)
    await notify.to_chat(session.pk, await sync_to_async(_turns_html)(session))
    # What the turns left behind put on the todo list is off it.
    if session.todos:
        await todos.changed(session)
    left = f"{dropped} later message{'s' if dropped != 1 else ''}"
    files_too = " The files they changed are put back as your next message starts." if files else ""
    return f"Rewound: Claude Code continues from that message and no longer remembers the {left}.{files_too}"


def _turns_html(session: Session) -> str:
    return fragments.turns_refreshed(session, latest_turns(session=session), may_answer=True)


def _forked_lines(data: bytes, *, point: str, new_id: str) -> bytes:
    """The transcript's lines up to and including the entry ``point``, each naming the new session."""
    kept = []
    for raw in data.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "sessionId" in entry:
            entry["sessionId"] = new_id
        kept.append(json.dumps(entry, ensure_ascii=False).encode())
        if entry.get("uuid") == point:
            return b"\n".join(kept) + b"\n"
    raise HistoryRefused(
        "That message's point is not in the chat's Claude Code transcript (it was archived, or the transcript was "
        "changed), so no fork was made."
    )


@sync_to_async
def _fork(session_id: uuid.UUID, user: User, turn_id: int) -> Session:
    original = Session.objects.get(pk=session_id, owner=user)
    if original.is_archived or original.kind != Session.Kind.CHAT:
        _refuse_archived_or_busy(original)
    point = _point(original, turn_id)
    try:
        project = projects.project_for(user, original.project or None)
    except projects.ProjectRefused as exc:
        raise HistoryRefused(str(exc)) from None
    try:
        source = Transcript.at(config_dir=original.config_dir, path=original.transcript_path)
        # Read as a name beneath the chat's config folder, no link followed: the agent can write there.
        data = safefs.read_bytes(source.root, source.name, limit=MAX_TRANSCRIPT_BYTES)
    except (OSError, ArchiveError) as exc:
        raise HistoryRefused(
            f"The chat's Claude Code transcript could not be read, so no fork was made: {exc}"
        ) from None
    title = f"{original.display_title} (fork)"
    with transaction.atomic():
        fork = chats.create_session(owner=user, title=title, project=project, model=original.model or None)
        lines = _forked_lines(data, point=point.cli_uuid, new_id=str(fork.pk))
        target = Transcript.at(config_dir=fork.config_dir, path=fork.transcript_path)
        Path(target.root).mkdir(mode=0o700, parents=True, exist_ok=True)  # the server's folder of chats' folders
        with safefs.create(target.root, target.name, parents=True) as out:
            out.write(lines)
        fork.cli_created = True
        fork.forked_from, fork.forked_after = original, point
        fork.permission_mode = original.permission_mode
        fork.save(update_fields=["cli_created", "forked_from", "forked_after", "permission_mode"])
    return fork


async def fork(*, session_id: uuid.UUID, user: User, turn_id: int) -> Session:
    """A new chat that starts from after turn ``turn_id`` of this one, which is left as it is."""
    fork = await _fork(session_id, user, turn_id)
    await notify.chats_changed(fork)
    return fork
