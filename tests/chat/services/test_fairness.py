"""Members share the process pool fairly: one member's queue cannot starve another's turn, a
member's waiting turns are capped, and a waiting turn can be cancelled. On the stand-in process
(tests/fake_session.py): the order is the engine's, the CLI adds nothing to it."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Turn
from chat.services import turns
from tests.factories import make_session, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("rt", [{"max_processes": 1}], indirect=True)
async def test_a_full_pool_serves_members_in_turn(fake_cli, rt):
    ann, ben = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    anns = [await sync_to_async(make_session)(owner=ann) for _ in range(3)]
    bens = await sync_to_async(make_session)(owner=ben)
    sent = [await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="slow 0.3") for chat in anns]
    late = await turns.submit_message(engine=rt, session_id=bens.id, user=ben, text="echo: my one line")
    await rt.turns.idle()

    done = {t.pk: t async for t in Turn.objects.filter(pk__in=[*(t.pk for t in sent), late.pk])}
    assert all(t.status == Turn.Status.DONE for t in done.values())
    order = sorted(done, key=lambda pk: done[pk].started_at)
    # Ben's one turn runs right after the turn of Ann's that held the slot, not behind all of hers.
    assert order.index(late.pk) == 1, [done[pk].prompt for pk in order]


@pytest.mark.parametrize("rt", [{"max_processes": 1}], indirect=True)
async def test_a_member_may_have_only_so_many_messages_waiting(fake_cli, rt, settings):
    settings.CLAUDE_MAX_QUEUED_PER_MEMBER = 2
    ann = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ann)
    first = await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="slow 1")
    assert await rt.wait_started(turn=first.pk)  # running: it does not count as waiting
    await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="echo: two")
    await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="echo: three")
    with pytest.raises(turns.TurnRefused, match="2 messages waiting"):
        await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="echo: four")
    # Another member is not held back by Ann's queue.
    ben = await sync_to_async(make_user)()
    bens = await sync_to_async(make_session)(owner=ben)
    await turns.submit_message(engine=rt, session_id=bens.id, user=ben, text="echo: mine")
    await rt.turns.idle()
    assert [t.prompt async for t in Turn.objects.filter(session=chat)] == ["slow 1", "echo: two", "echo: three"]


async def test_a_waiting_message_can_be_cancelled_and_never_runs(fake_cli, rt):
    ann = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ann)
    running = await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="slow 0.3")
    waiting = await turns.submit_message(engine=rt, session_id=chat.id, user=ann, text="echo: never mind")
    assert await rt.wait_started(turn=running.pk)
    assert await turns.cancel_turn(engine=rt, session_id=chat.id, turn_id=waiting.pk)
    assert not await turns.cancel_turn(engine=rt, session_id=chat.id, turn_id=running.pk)  # it runs: Stop it instead
    await rt.turns.idle()
    cancelled = await Turn.objects.aget(pk=waiting.pk)
    assert cancelled.status == Turn.Status.STOPPED and cancelled.started_at is None
    assert cancelled.error == "Cancelled before it ran."
    assert (await Turn.objects.aget(pk=running.pk)).status == Turn.Status.DONE
    assert not any("never mind" in prompt for process in fake_cli.started for prompt in process.prompts)
