"""Rewind and fork with the REAL Claude Code CLI against the offline stand-in: rewound to message 2
of 4, the next answer sees only the first two; a fork starts from its message and leaves the
original as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import Event, Session, Turn
from chat.services import history
from tests.factories import make_session, make_user
from tests.real_turns import answer_of as answer
from tests.real_turns import say

pytestmark = [pytest.mark.django_db(transaction=True)]


async def four_names(rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    said = [
        await say(engine=rt, session=chat, user=user, text=f"my name is {name}") for name in ("Ada", "Bob", "Cy", "Dee")
    ]
    assert all(turn.cli_uuid for turn in said)
    return user, chat, said


async def test_rewound_to_message_2_of_4_the_next_answer_sees_only_2(claude_env, rt, stub_api):
    user, chat, said = await four_names(rt)
    first_pid = said[0].pid
    done = await history.rewind(engine=rt, session_id=chat.id, user=user, turn_id=said[1].pk)
    assert "no longer remembers the 2 later messages" in done
    left = [t async for t in Turn.objects.filter(session=chat, dropped_at__isnull=False).order_by("id")]
    assert [t.pk for t in left] == [said[2].pk, said[3].pk]

    asked = len(stub_api.requests)
    after = await say(engine=rt, session=chat, user=user, text="what is my name")
    assert await answer(after) == "Your name is Bob."
    sent = str(stub_api.requests[asked]["body"]["messages"])
    assert "my name is Bob" in sent and "my name is Cy" not in sent and "my name is Dee" not in sent
    assert after.pid != first_pid  # a new process, started at the rewind's point
    # The next turns go on from there.
    again = await say(engine=rt, session=chat, user=user, text="what is my name")
    assert await answer(again) == "Your name is Bob."
    assert not (await Session.objects.aget(pk=chat.pk)).resume_at

    with pytest.raises(history.HistoryRefused, match="left that message behind"):
        await history.rewind(engine=rt, session_id=chat.id, user=user, turn_id=said[3].pk)


async def test_a_fork_starts_from_its_message_and_the_original_is_untouched(claude_env, rt):
    user, chat, said = await four_names(rt)
    fork = await history.fork(session_id=chat.id, user=user, turn_id=said[0].pk)
    assert fork.pk != chat.pk and fork.forked_from_id == chat.pk and fork.forked_after_id == said[0].pk
    assert fork.config_dir != chat.config_dir
    in_fork = await say(engine=rt, session=fork, user=user, text="what is my name")
    assert await answer(in_fork) == "Your name is Ada."
    in_original = await say(engine=rt, session=chat, user=user, text="what is my name")
    assert await answer(in_original) == "Your name is Dee."
    assert await Turn.objects.filter(session=chat, dropped_at__isnull=False).acount() == 0


async def test_rewound_with_its_files_the_later_changes_are_undone_when_the_next_message_runs(claude_env, rt, settings):
    settings.CLAUDE_PERMISSION_MODE = "acceptEdits"
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    folder = Path(chat.workdir)
    said = [
        await say(engine=rt, session=chat, user=user, text=text)
        for text in ("write a.txt: one", "write a.txt: two", "write b.txt: new")
    ]
    assert (folder / "a.txt").read_text() == "two\n" and (folder / "b.txt").exists()
    done = await history.rewind(engine=rt, session_id=chat.id, user=user, turn_id=said[0].pk, files=True)
    assert "put back as your next message starts" in done
    after = await say(engine=rt, session=chat, user=user, text="echo: where were we")
    assert (folder / "a.txt").read_text() == "one\n" and not (folder / "b.txt").exists()
    notice = await Event.objects.aget(turn=after, kind=Event.Kind.NOTICE, name="files_rewound")
    assert not notice.is_error
    chat = await Session.objects.aget(pk=chat.pk)
    assert not chat.resume_at and not chat.restore_files_at
