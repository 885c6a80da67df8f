"""`manage.py expire_sessions` on transcripts written by the REAL Claude Code CLI."""

from __future__ import annotations

import asyncio
import gzip
import os
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from chat.models import Session, Turn
from chat.services import turns
from tasks import services as tasks
from tasks.models import Task
from tests.factories import make_session, make_user
from tests.real_turns import age, new_chat
from tests.server_files import agent_links_transcript, agent_runs
from tests.task_helpers import git, settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


@sync_to_async
def expire(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("expire_sessions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def transcript_bytes(session: Session) -> bytes:
    return Path(session.transcript_path).read_bytes()


def archive_bytes(session: Session) -> bytes:
    return Path(session.archive_path).read_bytes()


async def aged_chat(rt, user, *, hours: float = 48, text: str = "My name is Ada") -> tuple[Session, bytes]:
    """A chat with one real turn, idle for ``hours``, and its transcript's bytes."""
    session = await new_chat(engine=rt, user=user, text=text)
    await sync_to_async(age)(session, hours=hours)
    return session, transcript_bytes(session)


async def test_idle_chats_are_archived_with_their_transcript_gzipped(claude_env, rt):
    user = await sync_to_async(make_user)(username="alice")
    old, original = await aged_chat(rt, user)
    recent, _ = await aged_chat(rt, user, hours=1)

    out, err = await expire()

    old = await Session.objects.aget(pk=old.pk)
    archive = claude_env.archive_dir / f"{old.id}.jsonl.gz"
    assert old.is_archived and old.status == Session.Status.ARCHIVED
    assert old.archive_path == str(archive)
    assert gzip.decompress(archive.read_bytes()) == original
    assert not claude_env.transcript(old).exists()
    assert await Turn.objects.filter(session=old).acount() == 1, "the messages stay in the database"
    assert f"Archived {old.id}" in out and "alice" in out and "Archived 1 chat(s), skipped 0 busy, 0 failed." in out
    assert err == ""

    recent = await Session.objects.aget(pk=recent.pk)
    assert not recent.is_archived and claude_env.transcript(recent).exists()
    assert [p.name for p in claude_env.archive_dir.iterdir()] == [archive.name], "no temporary file is left"


async def test_dry_run_lists_and_changes_nothing(claude_env, rt):
    user = await sync_to_async(make_user)()
    session, original = await aged_chat(rt, user)

    out, _ = await expire("--dry-run")

    assert f"Would archive {session.id}" in out and "nothing was changed" in out
    assert not (await Session.objects.aget(pk=session.pk)).is_archived
    assert transcript_bytes(session) == original
    assert not claude_env.archive_dir.exists() or not any(claude_env.archive_dir.iterdir())


async def test_running_twice_is_harmless(claude_env, rt):
    user = await sync_to_async(make_user)()
    session, original = await aged_chat(rt, user)
    await expire()
    first = await Session.objects.aget(pk=session.pk)

    out, err = await expire()

    again = await Session.objects.aget(pk=session.pk)
    assert "Archived 0 chat(s)" in out and err == ""
    assert again.archived_at == first.archived_at and again.archive_path == first.archive_path
    assert gzip.decompress(archive_bytes(again)) == original


async def test_older_than_takes_decimal_hours(claude_env, rt):
    user = await sync_to_async(make_user)()
    hour_old, _ = await aged_chat(rt, user, hours=1)
    fresh, _ = await aged_chat(rt, user, hours=0.25)

    await expire("--older-than", "0.5")

    assert (await Session.objects.aget(pk=hour_old.pk)).is_archived
    assert not (await Session.objects.aget(pk=fresh.pk)).is_archived


async def test_bad_older_than_is_refused():
    with pytest.raises(CommandError, match="not a number of hours"):
        await expire("--older-than", "soon")


async def test_a_chat_that_never_ran_is_archived_with_nothing_to_move(claude_env):
    user = await sync_to_async(make_user)()
    session = await sync_to_async(make_session)(owner=user)
    await sync_to_async(age)(session, hours=30)

    out, _ = await expire()

    session = await Session.objects.aget(pk=session.pk)
    assert session.is_archived and session.archive_path == ""
    assert "(no transcript)" in out


async def test_a_chat_with_a_running_turn_is_skipped(claude_env, rt):
    user = await sync_to_async(make_user)()
    session, original = await aged_chat(rt, user)
    slow = await turns.submit_message(engine=rt, session_id=session.id, user=user, text="slow 3")
    while (await Turn.objects.aget(pk=slow.pk)).status != Turn.Status.RUNNING:
        await asyncio.sleep(0.05)
    await sync_to_async(age)(session, hours=48)

    out, _ = await expire()

    assert f"Skipped {session.id}" in out and "running or queued" in out
    assert not (await Session.objects.aget(pk=session.pk)).is_archived
    await rt.turns.idle()
    assert (await Turn.objects.aget(pk=slow.pk)).status == Turn.Status.DONE
    assert len(transcript_bytes(session)) > len(original), "the running turn still wrote its transcript"


async def test_a_chat_with_a_queued_turn_is_skipped(claude_env, rt):
    user = await sync_to_async(make_user)()
    session, original = await aged_chat(rt, user)
    # Saved but not yet picked up: what a queue behind a busy slot looks like.
    await Turn.objects.acreate(session=session, author=user, prompt="later", status=Turn.Status.QUEUED)

    out, _ = await expire()

    assert f"Skipped {session.id}" in out
    assert not (await Session.objects.aget(pk=session.pk)).is_archived
    assert transcript_bytes(session) == original


async def test_an_unwritable_archive_folder_leaves_the_chat_as_it_was_and_fails_loudly(
    claude_env, settings, tmp_path, rt
):
    user = await sync_to_async(make_user)()
    session, original = await aged_chat(rt, user)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the archive's parent should be")
    settings.CLAUDE_ARCHIVE_DIR = blocker / "archive"
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="1 chat\\(s\\) could not be archived"):
        await sync_to_async(call_command)("expire_sessions", stdout=out, stderr=err)

    assert f"Could not archive {session.id}" in err.getvalue() and "Not a directory" in err.getvalue()
    assert "1 failed" in out.getvalue()
    unchanged = await Session.objects.aget(pk=session.pk)
    assert not unchanged.is_archived and unchanged.status == Session.Status.IDLE and unchanged.archive_path == ""
    assert transcript_bytes(session) == original
    assert blocker.read_text().startswith("a regular file")


async def test_the_session_of_a_task_waiting_for_review_is_kept_and_the_task_stays_mergeable(repo, scheduler, user, rt):
    task = await tasks.create_task(engine=rt, user=user, prompt="write review.txt: please review", title="Needs review")
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    session = await Session.objects.aget(pk=task.session_id)
    await sync_to_async(age)(session, hours=48)

    out, err = await expire()

    session = await Session.objects.aget(pk=session.pk)
    assert not session.is_archived and Path(session.transcript_path).is_file()
    assert f"Kept {session.id}" in out and f"its task #{task.pk} is completed, not merged or discarded yet" in out
    assert "kept 1 of tasks not yet merged or discarded" in out and err == ""
    task = await Task.objects.aget(pk=task.pk)
    assert task.can_merge
    # A follow-up still finds the session's memory, and Merge then works.
    task = await tasks.resume(engine=rt, task_id=task.pk, message="write more.txt: and more")
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    task = await tasks.merge(engine=rt, task_id=task.pk)
    assert task.status == Task.Status.MERGED
    assert (repo / "review.txt").is_file() and (repo / "more.txt").is_file()
    assert "Merge task #" in git(repo, "log", "-1", "--format=%s", "main")

    # Once merged, its session is archived like any idle chat.
    await sync_to_async(age)(session, hours=48)
    out, _ = await expire()
    assert f"Archived {session.id}" in out


@sync_to_async
def expire_failing(*args: str) -> tuple[str, str, str]:
    """Run it where it must fail: (stdout, stderr, the error it exits with)."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("expire_sessions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), str(failed.value)


async def test_transcripts_an_agent_replaced_are_reported_left_as_they_were_and_never_archived(
    claude_env, server_files, rt
):
    """The agents of four chats put links to the server's secret key and database (and a folder)
    where their transcripts are; none of it is archived, each is named on stderr with why, and the
    command exits 1. A chat of the same member with a plain transcript is archived."""
    user = await sync_to_async(make_user)(username="mallory")
    to_key = await new_chat(engine=rt, user=user, text="My name is Ada")
    await agent_links_transcript(engine=rt, session=to_key, user=user, target=server_files.key)
    to_db = await new_chat(engine=rt, user=user, text="hello")
    await agent_links_transcript(engine=rt, session=to_db, user=user, target=server_files.db)
    folder_linked = await new_chat(engine=rt, user=user, text="hello")
    projects = Path(folder_linked.config_dir) / "projects"
    await agent_runs(
        engine=rt,
        session=folder_linked,
        user=user,
        command=f"mv {projects} {projects}.old && ln -s {server_files.folder} {projects}",
    )
    a_folder = await new_chat(engine=rt, user=user, text="hello")
    await agent_runs(
        engine=rt,
        session=a_folder,
        user=user,
        command=f"rm {a_folder.transcript_path} && mkdir {a_folder.transcript_path}",
    )
    plain, original = await aged_chat(rt, user)
    refused = {
        to_key: f"{to_key.transcript_path} is a symbolic link",
        to_db: f"{to_db.transcript_path} is a symbolic link",
        folder_linked: f"{projects} is a symbolic link",
        a_folder: f"{a_folder.transcript_path} is a folder, not a regular file",
    }
    for chat in refused:
        await sync_to_async(age)(chat, hours=48)
    in_data_folder = sorted(server_files.folder.iterdir())

    out, err, failed = await expire_failing("--dry-run")
    assert "4 chat(s) could not be archived" in failed and f"Would archive {plain.id}" in out
    out, err, failed = await expire_failing()

    assert "4 chat(s) could not be archived and were left unchanged" in failed
    assert "Archived 1 chat(s), skipped 0 busy, 4 failed." in out
    for chat, why in refused.items():
        assert f"Could not archive {chat.id} “hello”" in err or f"Could not archive {chat.id} “My name is Ada”" in err
        line = next(line for line in err.splitlines() if str(chat.id) in line)
        assert why in line and "nothing was read or written through it" in line and "An admin looks at it" in line
        chat = await Session.objects.aget(pk=chat.pk)
        assert not chat.is_archived and chat.status == Session.Status.IDLE and chat.archive_path == ""
    assert os.readlink(to_key.transcript_path) == str(server_files.key)
    assert os.readlink(to_db.transcript_path) == str(server_files.db)
    assert os.readlink(projects) == str(server_files.folder) and Path(a_folder.transcript_path).is_dir()

    plain = await Session.objects.aget(pk=plain.pk)
    assert plain.is_archived and gzip.decompress(archive_bytes(plain)) == original
    archives = list(claude_env.archive_dir.iterdir())
    assert [path.name for path in archives] == [f"{plain.id}.jsonl.gz"]
    assert not any(server_files.leaked_in(gzip.decompress(path.read_bytes())) for path in archives)
    assert server_files.untouched() and sorted(server_files.folder.iterdir()) == in_data_folder
