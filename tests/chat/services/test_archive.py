"""Archiving and restoring chats (chat/archive.py, the Restore button) with the REAL CLI."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from chat.models import Session, Turn
from chat.services import archive, turns
from chat.services.archive import ArchiveError, archive_session, restore_session
from tests.factories import logged_in_client, make_user
from tests.real_turns import answer_of, closed, new_chat, say
from tests.server_files import agent_links_transcript, agent_runs

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_restored_chat_continues_with_its_memory(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="My name is Ada")
    transcript = claude_env.transcript(chat)
    before = transcript.read_bytes()

    result = await sync_to_async(archive_session)(engine=rt, session=chat)
    # Its warm process was closed first: what the CLI wrote as it exited is archived too.
    original = gzip.decompress(result.archive_path.read_bytes())
    assert original.startswith(before) and not len(rt.node.warm)
    assert result.archive_path == claude_env.archive_dir / f"{chat.id}.jsonl.gz" and result.size == len(original)
    assert not transcript.exists()
    with pytest.raises(turns.TurnRefused, match="archived"):
        await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="What is my name?")

    client = await sync_to_async(logged_in_client)(user=user)
    page = await sync_to_async(client.get)(chat.get_absolute_url())
    assert b"Archived" in page.content and b"Restore" in page.content and b'id="message-form"' not in page.content

    response = await sync_to_async(client.post)(reverse("chat:restore", args=[chat.id]), follow=True)
    assert b"Restored" in response.content and b'id="message-form"' in response.content
    assert transcript.read_bytes() == original
    assert files_in(claude_env.archive_dir) == []
    restored = await Session.objects.aget(pk=chat.pk)
    assert not restored.is_archived and restored.status == Session.Status.IDLE and restored.archive_path == ""

    turn = await say(engine=rt, session=restored, user=user, text="What is my name?")
    assert "Your name is Ada" in await answer_of(turn)


async def test_only_the_owner_can_restore(claude_env, rt):
    owner, other = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=owner, text="hello")
    await sync_to_async(archive_session)(engine=rt, session=chat)
    client = await sync_to_async(logged_in_client)(user=other)

    response = await sync_to_async(client.post)(reverse("chat:restore", args=[chat.id]))
    assert response.status_code == 404
    assert (await Session.objects.aget(pk=chat.pk)).is_archived
    owner_client = await sync_to_async(logged_in_client)(user=owner)
    assert (await sync_to_async(owner_client.get)(reverse("chat:restore", args=[chat.id]))).status_code == 405


async def test_archiving_refuses_a_chat_with_a_pending_turn(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    await Turn.objects.acreate(session=chat, author=user, prompt="later", status=Turn.Status.QUEUED)

    with pytest.raises(ArchiveError, match="running or queued"):
        await sync_to_async(archive_session)(engine=rt, session=chat)
    assert claude_env.transcript(chat).exists() and files_in(claude_env.archive_dir) == []


class _FillingUp:
    """A file on a disk that fills up: half of the first write lands, then ENOSPC."""

    def __init__(self, file) -> None:
        self.file = file

    def write(self, data) -> int:
        self.file.write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


@pytest.mark.parametrize("size", ["small", "large"])
async def test_a_full_disk_leaves_no_half_archive(claude_env, monkeypatch, size, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    await closed(rt, chat)  # as archiving does first: the CLI writes its transcript's last entries as it exits
    if size == "large":  # packed in chunks rather than at once
        with claude_env.transcript(chat).open("ab") as transcript:
            transcript.write(b'{"type": "padding"}\n' * 100_000)
    original = claude_env.transcript(chat).read_bytes()
    if size == "small":
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: _FillingUp(real_fdopen(*args, **kwargs)))
    else:
        real_write = gzip.GzipFile.write

        def full_after_a_while(self, data):
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(gzip.GzipFile, "write", full_after_a_while)

    with pytest.raises(ArchiveError, match="No space left on device"):
        await sync_to_async(archive_session)(engine=rt, session=chat)
    assert files_in(claude_env.archive_dir) == []
    assert claude_env.transcript(chat).read_bytes() == original
    assert not (await Session.objects.aget(pk=chat.pk)).is_archived


async def test_a_transcript_that_cannot_be_removed_rolls_the_archive_back(claude_env, monkeypatch, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    source = claude_env.transcript(chat)
    real_unlink = os.unlink

    def refuse_source(path, *args, **kwargs):
        # The transcript is removed by its name in its folder (never by a path that could lead
        # elsewhere through a link).
        if os.fspath(path) == source.name:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse_source)

    with pytest.raises(ArchiveError, match="Permission denied"):
        await sync_to_async(archive_session)(engine=rt, session=chat)
    unchanged = await Session.objects.aget(pk=chat.pk)
    assert not unchanged.is_archived and unchanged.status == Session.Status.IDLE
    assert source.exists() and files_in(claude_env.archive_dir) == []


async def test_a_corrupt_archive_is_not_restored(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    result = await sync_to_async(archive_session)(engine=rt, session=chat)
    packed = result.archive_path.read_bytes()
    result.archive_path.write_bytes(packed[:-12] + b"\0" * 12)  # CRC and length trailer damaged

    with pytest.raises(ArchiveError, match="could not put the transcript back"):
        await sync_to_async(restore_session)(engine=rt, session=chat)
    assert (await Session.objects.aget(pk=chat.pk)).is_archived
    assert not claude_env.transcript(chat).exists()
    assert [n for n in files_in(claude_env.transcript(chat).parent) if str(chat.id) in n] == [], (
        "no partial transcript is left"
    )
    assert result.archive_path.exists()


async def test_restore_refuses_to_overwrite_a_different_transcript(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    await sync_to_async(archive_session)(engine=rt, session=chat)
    claude_env.transcript(chat).write_text("someone else's conversation\n")

    with pytest.raises(ArchiveError, match="different transcript already exists"):
        await sync_to_async(restore_session)(engine=rt, session=chat)
    assert (await Session.objects.aget(pk=chat.pk)).is_archived
    assert claude_env.transcript(chat).read_text() == "someone else's conversation\n"


async def test_restore_with_a_missing_archive_file_says_so(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    result = await sync_to_async(archive_session)(engine=rt, session=chat)
    result.archive_path.unlink()
    client = await sync_to_async(logged_in_client)(user=user)

    response = await sync_to_async(client.post)(reverse("chat:restore", args=[chat.id]), follow=True)
    assert b"could not be restored" in response.content and b"is missing" in response.content
    assert (await Session.objects.aget(pk=chat.pk)).is_archived


async def test_archive_and_restore_twice_are_harmless(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="hello")
    first = await sync_to_async(archive_session)(engine=rt, session=chat)
    again = await sync_to_async(archive_session)(engine=rt, session=chat)
    assert again.already and first.archive_path.exists()

    await sync_to_async(restore_session)(engine=rt, session=chat)
    assert (await sync_to_async(restore_session)(engine=rt, session=chat)).already
    assert claude_env.transcript(chat).exists()


def test_archive_files_are_named_by_uuid_only(settings, tmp_path):
    settings.CLAUDE_ARCHIVE_DIR = tmp_path
    session = Session(title="../../etc/passwd", workdir="/srv/x")
    assert archive.archive_file_for(session) == tmp_path / f"{session.id}.jsonl.gz"


# ---------------------------------------------------------------------------------------
# Links an agent made: nothing is read, archived or restored through them


async def test_a_transcript_the_agent_replaced_with_a_link_is_not_archived_and_the_admin_says_why(
    claude_env, server_files, rt
):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="My name is Ada")
    await agent_links_transcript(engine=rt, session=chat, user=user, target=server_files.key)

    with pytest.raises(ArchiveError, match="is a symbolic link") as refused:
        await sync_to_async(archive_session)(engine=rt, session=chat)
    assert "nothing was read or written through it and the chat was left as it was" in str(refused.value)
    staff = await sync_to_async(make_user)(is_staff=True)
    client = await sync_to_async(logged_in_client)(user=staff)
    page = await sync_to_async(client.post)(
        "/admin/chat/session/", {"action": "archive_now", ACTION_CHECKBOX_NAME: [str(chat.pk)]}, follow=True
    )
    assert "was not archived" in page.content.decode() and f"{chat.transcript_path} is a symbolic link" in (
        page.content.decode()
    )
    assert not (await Session.objects.aget(pk=chat.pk)).is_archived
    assert files_in(claude_env.archive_dir) == [] and server_files.untouched()
    assert os.readlink(chat.transcript_path) == str(server_files.key)


@pytest.mark.parametrize("where", ["transcript", "projects folder", "folder of its working directory"])
async def test_restore_writes_nothing_through_a_link_in_the_transcripts_place(claude_env, server_files, where, rt):
    """While a chat is archived, something the agent left behind puts a link where Restore will
    write: Restore says it cannot and what to do, and writes nothing; once the link is gone it works."""
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="My name is Ada")
    result = await sync_to_async(archive_session)(engine=rt, session=chat)
    transcript = Path(chat.transcript_path)
    link = {
        "transcript": transcript,
        "projects folder": Path(chat.config_dir) / "projects",
        "folder of its working directory": transcript.parent,
    }[where]
    if link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(server_files.key if link == transcript else server_files.folder)
    in_data_folder = sorted(server_files.folder.iterdir())
    client = await sync_to_async(logged_in_client)(user=user)

    page = (await sync_to_async(client.post)(reverse("chat:restore", args=[chat.id]), follow=True)).content.decode()

    assert "could not be restored" in page and f"{link} is a symbolic link" in page
    assert "Ask an admin to remove it" in page and "then press Restore again" in page
    assert (await Session.objects.aget(pk=chat.pk)).is_archived and result.archive_path.is_file()
    assert server_files.untouched() and sorted(server_files.folder.iterdir()) == in_data_folder

    link.unlink()  # what the admin does
    page = (await sync_to_async(client.post)(reverse("chat:restore", args=[chat.id]), follow=True)).content.decode()
    assert "Restored" in page and not transcript.is_symlink()
    turn = await say(engine=rt, session=await Session.objects.aget(pk=chat.pk), user=user, text="What is my name?")
    assert "Your name is Ada" in await answer_of(turn)


async def test_after_archive_and_restore_the_next_turn_reads_only_the_chats_own_transcript(
    claude_env, server_files, stub_api, rt
):
    user = await sync_to_async(make_user)()
    chat = await new_chat(engine=rt, user=user, text="My name is Ada")
    assert len(rt.node.warm) == 1, "the chat's process is warm"

    await sync_to_async(archive_session)(engine=rt, session=chat)
    assert len(rt.node.warm) == 0, "archiving closed the chat's warm process"
    await sync_to_async(restore_session)(engine=rt, session=chat)
    start, started = len(stub_api.requests), rt.node.warm.started

    turn = await say(engine=rt, session=chat, user=user, text="What is my name?")
    assert "Your name is Ada" in await answer_of(turn) and rt.node.warm.started == started + 1
    transcript = Path(chat.transcript_path)
    await agent_runs(engine=rt, session=chat, user=user, command=f"ls -la {transcript.parent}; cat {transcript}")
    sent = "\n".join(json.dumps(request["body"]) for request in stub_api.requests[start:])
    assert "My name is Ada" in sent, "the agent read its own transcript"
    assert not server_files.leaked_in(sent)
