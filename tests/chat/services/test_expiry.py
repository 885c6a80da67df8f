"""Archiving many idle chats at once: a few queries per batch, whatever their number, and each chat
reported as it is done (transcripts here are files in place, as the CLI leaves them)."""

from __future__ import annotations

import gzip
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from chat.models import Session, Turn
from chat.services.expiry import Outcome, expire_sessions
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def folders(settings, tmp_path):
    settings.CLAUDE_WORKDIR = tmp_path / "work"
    settings.CLAUDE_CONFIG_DIR = tmp_path / "claude"
    settings.CLAUDE_ARCHIVE_DIR = tmp_path / "archive"
    return tmp_path


def idle_chats(count: int, *, tmp_path: Path, owner=None) -> list[Session]:
    """Chats idle for two days, each with a transcript where the CLI keeps it (in its config folder)."""
    owner = owner or make_user()
    made = []
    for n in range(count):
        chat = make_session(owner=owner, title=f"Chat {n}")
        transcript = Path(chat.transcript_path)
        transcript.parent.mkdir(parents=True)
        transcript.write_text(f'{{"type": "user", "n": {n}}}\n' * 50)
        Session.objects.filter(pk=chat.pk).update(last_activity_at=timezone.now() - timedelta(days=2, minutes=n))
        made.append(Session.objects.get(pk=chat.pk))
    return made


def run(**options):
    """Run it and return (reports, the SQL it sent, in order with the reports)."""
    trail: list[tuple[str, object]] = []

    def record(execute, sql, params, many, context):
        trail.append(("sql", sql))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        totals = expire_sessions(
            older_than=timedelta(days=1),
            dry_run=False,
            report=lambda expired: trail.append(("report", expired)),
            **options,
        )
    return totals, trail


def test_the_queries_stay_a_few_per_batch_however_many_chats(folders):
    chats = idle_chats(24, tmp_path=folders)
    busy = chats[5]
    Turn.objects.create(session=busy, prompt="still running", status=Turn.Status.RUNNING)

    totals, trail = run(batch_size=8)

    assert (totals.archived, totals.skipped, totals.failed) == (23, 1, 0)
    queries = [sql for kind, sql in trail if kind == "sql"]
    # Per batch: read it, ask which of its chats are kept (open tasks'), check it again under the
    # lock, mark it archived; and one read that finds the end.
    assert len([q for q in queries if q.startswith(("SELECT", "UPDATE"))]) <= 3 * 4 + 1, queries
    for chat in chats:
        chat.refresh_from_db()
        if chat.pk == busy.pk:
            assert not chat.is_archived and Path(chat.transcript_path).exists()
        else:
            assert chat.is_archived and not Path(chat.transcript_path).exists()
            assert gzip.decompress(Path(chat.archive_path).read_bytes()).count(b'"type": "user"') == 50


def test_each_chat_is_reported_before_the_next_batch_is_read(folders):
    chats = idle_chats(6, tmp_path=folders)

    _totals, trail = run(batch_size=3)

    batch_reads = [
        n
        for n, (kind, sql) in enumerate(trail)
        if kind == "sql" and 'FROM "chat_session"' in str(sql) and "LIMIT 3" in str(sql)
    ]
    reports = [n for n, (kind, _what) in enumerate(trail) if kind == "report"]
    assert len(reports) == 6 and len(batch_reads) == 3  # the third read finds nothing more
    assert max(reports[:3]) < batch_reads[1] < min(reports[3:])
    oldest_first = [what.session_id for kind, what in trail if kind == "report"]
    assert oldest_first == [c.id for c in reversed(chats)]  # the later the number, the longer idle
    assert all(what.outcome == Outcome.ARCHIVED for kind, what in trail if kind == "report")


def test_large_and_small_transcripts_come_back_whole_from_their_archives(folders):
    small, large = idle_chats(2, tmp_path=folders)
    big = b"".join(b'{"type": "assistant", "n": %d, "text": "%s"}\n' % (n, b"words " * (n % 50)) for n in range(20_000))
    Path(large.transcript_path).write_bytes(big)
    before = {chat.pk: Path(chat.transcript_path).read_bytes() for chat in (small, large)}

    totals, _trail = run()

    assert totals.archived == 2 and len(before[large.pk]) > 1024 * 1024
    for chat in (small, large):
        chat.refresh_from_db()
        assert gzip.decompress(Path(chat.archive_path).read_bytes()) == before[chat.pk]


def test_a_fifo_or_a_link_in_place_of_a_transcript_fails_that_chat_alone_and_blocks_nothing(folders):
    fifo, linked, plain = idle_chats(3, tmp_path=folders)
    secret = folders / "secret-key.txt"
    secret.write_text("SERVER-SECRET")
    Path(fifo.transcript_path).unlink()
    os.mkfifo(fifo.transcript_path)  # a reader that opened it would wait for a writer for ever
    Path(linked.transcript_path).unlink()
    Path(linked.transcript_path).symlink_to(secret)

    totals, trail = run()

    reports = {what.session_id: what for kind, what in trail if kind == "report"}
    assert (totals.archived, totals.failed) == (1, 2)
    assert reports[fifo.id].outcome == Outcome.FAILED and "is a FIFO (named pipe), not a regular file" in (
        reports[fifo.id].reason
    )
    assert reports[linked.id].outcome == Outcome.FAILED and "is a symbolic link" in reports[linked.id].reason
    assert reports[plain.id].outcome == Outcome.ARCHIVED
    assert [p.name for p in Path(folders / "archive").iterdir()] == [f"{plain.id}.jsonl.gz"]
    assert Path(fifo.transcript_path).is_fifo() and Path(linked.transcript_path).is_symlink()
    assert secret.read_text() == "SERVER-SECRET"
