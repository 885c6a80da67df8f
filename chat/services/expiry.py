"""Archiving every idle chat at once (``manage.py expire_sessions``), in batches.

Per batch: one query reads the chats (with whether a turn is pending), their transcripts are
packed by a few threads at once (gzip and the disk wait outside the interpreter's lock), and one
transaction re-checks them under the lock, removes the originals and marks them archived in one
UPDATE. A chat that fails is left as it was and does not stop the others; what happened to each
chat is handed to ``report`` as it happens, so nothing accumulates however many chats there are.
"""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import DatabaseError, connection, transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.expressions import RawSQL
from django.utils import timezone

from drivers import safefs

from ..models import Session, Turn
from .archive import archive_file_of, kept, undo_archive
from .packing import PACK_ERRORS, ArchiveError, Packed, Transcript, pack, problem, sync_folder

BATCH = 500
# Threads for packing large transcripts (compression releases the interpreter's lock) and for
# removing originals.
WORKERS = 8
LARGE = 256 * 1024


class Outcome(enum.StrEnum):
    ARCHIVED = "archived"
    WOULD_ARCHIVE = "would archive"
    SKIPPED = "skipped"
    KEPT = "kept"  # held back by another app (an open task's session)
    FAILED = "failed"


@dataclass(frozen=True)
class Expired:
    """What happened to one chat."""

    session_id: uuid.UUID
    title: str
    owner: str
    last_activity_at: datetime
    outcome: Outcome
    size: int = 0  # bytes of its transcript (0: none)
    archive_path: Path | None = None
    reason: str = ""


@dataclass
class ExpireTotals:
    archived: int = 0
    would_archive: int = 0
    skipped: int = 0
    kept: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Chat:
    id: uuid.UUID
    title: str
    owner: str
    last_activity_at: datetime
    config_dir: str
    transcript_path: str
    busy: bool

    def transcript(self) -> Transcript:
        return Transcript.at(config_dir=self.config_dir, path=self.transcript_path)

    def said(self, outcome: Outcome, *, size: int = 0, archive_path: Path | None = None, reason: str = "") -> Expired:
        return Expired(
            session_id=self.id,
            title=self.title or "New chat",
            owner=self.owner,
            last_activity_at=self.last_activity_at,
            outcome=outcome,
            size=size,
            archive_path=archive_path,
            reason=reason,
        )


def _pending() -> Exists:
    return Exists(Turn.objects.filter(session=OuterRef("pk"), status__in=Turn.PENDING))


def _batches(*, cutoff: datetime, size: int) -> Iterator[list[_Chat]]:
    """Unarchived chats idle since before ``cutoff``, oldest first, ``size`` at a time (one query each)."""
    idle = (
        Session.objects.active()
        .filter(last_activity_at__lt=cutoff)
        .annotate(busy=_pending())
        .order_by("last_activity_at", "id")
    )
    after: Q = Q()
    while True:
        rows = list(
            idle.filter(after).values_list(
                "id", "title", "owner__username", "last_activity_at", "config_dir", "transcript_path", "busy"
            )[:size]
        )
        if not rows:
            return
        yield [
            _Chat(
                id=r[0], title=r[1], owner=r[2], last_activity_at=r[3], config_dir=r[4], transcript_path=r[5], busy=r[6]
            )
            for r in rows
        ]
        last = rows[-1]
        after = Q(last_activity_at__gt=last[3]) | Q(last_activity_at=last[3], id__gt=last[0])


def _looks_large(chat: _Chat) -> bool:
    """Whether to pack it in a thread of its own: a guess from the size at its path, which reads no
    byte and opens nothing (packing then opens it without following links, and refuses a link)."""
    try:
        return os.lstat(chat.transcript_path).st_size >= LARGE
    except OSError:
        return False


def _pack_all(chats: list[_Chat], packers: ThreadPoolExecutor) -> list[Packed | Exception | None]:
    """Large transcripts are packed side by side (zlib works outside the interpreter's lock);
    small ones one after the other, where threads only fight over the lock and the folder."""
    large = {chat.id: packers.submit(_pack, chat) for chat in chats if _looks_large(chat)}
    return [large[chat.id].result() if chat.id in large else _pack(chat) for chat in chats]


def _pack(chat: _Chat) -> Packed | Exception | None:
    """The chat's verified archive copy (None: it has no transcript), or why it could not be made."""
    try:
        return pack(source=chat.transcript(), target=archive_file_of(chat.id), session_id=str(chat.id), sync=False)
    except PACK_ERRORS as exc:
        return exc


def _dry_run(chat: _Chat) -> Expired:
    """What archiving the chat would do, from what its transcript is (no file is opened)."""
    try:
        transcript = chat.transcript()
        size = safefs.stat_file(transcript.root, transcript.name).st_size
    except FileNotFoundError:
        size = 0
    except (OSError, ArchiveError) as exc:  # a link or another kind of file there, among others
        return chat.said(Outcome.FAILED, reason=problem(exc))
    return chat.said(Outcome.WOULD_ARCHIVE, size=size)


def expire_sessions(
    *,
    older_than: timedelta,
    dry_run: bool,
    now: datetime | None = None,
    report: Callable[[Expired], None] = lambda expired: None,
    batch_size: int = BATCH,
) -> ExpireTotals:
    """Archive every unarchived chat idle for longer than ``older_than`` (with ``dry_run``, only
    say which); chats with a running or queued turn are skipped, and those a keeper holds back
    (an open task's) are kept."""
    totals = ExpireTotals()

    def tell(expired: Expired) -> None:
        setattr(totals, expired.outcome.name.lower(), getattr(totals, expired.outcome.name.lower()) + 1)
        report(expired)

    cutoff = (now or timezone.now()) - older_than
    with ThreadPoolExecutor(max_workers=WORKERS) as packers:
        for batch in _batches(cutoff=cutoff, size=batch_size):
            keep = kept([chat.id for chat in batch if not chat.busy])  # one query a batch
            for chat in batch:
                if chat.busy:
                    tell(chat.said(Outcome.SKIPPED, reason="a turn is running or queued"))
                elif chat.id in keep:
                    tell(chat.said(Outcome.KEPT, reason=keep[chat.id]))
                elif dry_run:
                    tell(_dry_run(chat))
            if not dry_run:
                idle = [chat for chat in batch if not chat.busy and chat.id not in keep]
                _archive_batch(list(zip(idle, _pack_all(idle, packers), strict=True)), tell=tell, removers=packers)
    return totals


def _archive_batch(
    packed: list[tuple[_Chat, Packed | Exception | None]],
    *,
    tell: Callable[[Expired], None],
    removers: ThreadPoolExecutor,
) -> None:
    """Mark the packed chats archived and remove their originals, all in one transaction. The
    originals are removed by several threads at once: removing a file that is on disk waits for
    the file system's journal, and one after the other those waits added up to most of the run."""
    ready: list[tuple[_Chat, Packed | None]] = []
    for chat, result in packed:
        if isinstance(result, (safefs.UnsafePath, ArchiveError)):
            # A link or a wrong kind of file where its transcript is, or a damaged record: nothing
            # was read; or the copy did not verify: the text says which.
            tell(chat.said(Outcome.FAILED, reason=problem(result)))
        elif isinstance(result, Exception):
            tell(chat.said(Outcome.FAILED, reason=f"could not write the archive copy: {problem(result)}"))
        else:
            ready.append((chat, result))
    for folder in {p.target.parent for _chat, p in ready if p is not None}:
        sync_folder(folder)
    removed: list[tuple[_Chat, Packed | None]] = []
    try:
        with transaction.atomic():
            ids = {chat.id for chat, _p in ready}
            # Checked again under the lock: a message sent meanwhile must not be lost.
            still = set(
                Session.objects.select_for_update()
                .filter(pk__in=ids, archived_at__isnull=True)
                .exclude(_pending())
                .values_list("pk", flat=True)
            )
            # Another run may have archived some meanwhile: their archive files are the ones just written.
            elsewhere = (
                set(Session.objects.filter(pk__in=ids - still, archived_at__isnull=False).values_list("pk", flat=True))
                if ids - still
                else set()
            )
            to_remove = []
            for chat, p in ready:
                if chat.id in elsewhere:
                    continue
                if chat.id not in still:
                    _take_back(p)
                    tell(
                        chat.said(
                            Outcome.FAILED,
                            reason="a message was sent to it while it was being archived; try again later",
                        )
                    )
                else:
                    to_remove.append((chat, p))
            for (chat, p), why in zip(
                to_remove, removers.map(_remove_original, [p for _c, p in to_remove]), strict=True
            ):
                if why is not None:
                    tell(chat.said(Outcome.FAILED, reason=why))
                else:
                    removed.append((chat, p))
            if removed:
                Session.objects.filter(pk__in=[chat.id for chat, _p in removed]).update(
                    archived_at=timezone.now(),
                    status=Session.Status.ARCHIVED,
                    archive_path=_each_path([(chat.id, p.target) for chat, p in removed if p is not None]),
                )
    except BaseException as exc:
        # The change did not happen: every original removed in this batch goes back.
        for chat, p in removed:
            problem_back = ""
            if p is not None:
                try:
                    undo_archive(p, removed=True)
                except ArchiveError as undo:
                    problem_back = f"; {undo}"
            if isinstance(exc, DatabaseError):
                tell(chat.said(Outcome.FAILED, reason=f"the database refused the change ({exc}){problem_back}"))
        if not isinstance(exc, DatabaseError):
            raise
        return
    for chat, p in removed:
        tell(chat.said(Outcome.ARCHIVED, size=p.seen.size if p else 0, archive_path=p.target if p else None))


def _each_path(paths: list[tuple[uuid.UUID, Path]]) -> RawSQL | Value:
    """Each chat's archive path in the one UPDATE of its batch ("" for chats with no transcript):
    a CASE written out, which costs nothing to build where 500 ORM When()s took longer than the
    files they name."""
    if not paths:
        return Value("")
    as_stored = Session._meta.pk.get_db_prep_value
    whens = " ".join(["WHEN %s THEN %s"] * len(paths))
    params = [value for pk, path in paths for value in (as_stored(pk, connection), str(path))]
    return RawSQL(f"CASE id {whens} ELSE '' END", params, output_field=CharField())


def _take_back(packed: Packed | None) -> None:
    if packed is not None:
        packed.target.unlink(missing_ok=True)


def _remove_original(packed: Packed | None) -> str | None:
    """Remove the chat's transcript (None), or say why it stays, its archive copy taken back."""
    if packed is None:
        return None
    try:
        if not packed.remove_source():
            _take_back(packed)
            return "its transcript changed while it was being archived; try again later"
    except OSError as exc:
        _take_back(packed)
        return f"could not remove the transcript after copying it: {problem(exc)}"
    return None
