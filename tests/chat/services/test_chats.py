"""Starting a chat with its first message, attachments that reach the agent, and a chat's model;
with the REAL Claude Code CLI against the offline stand-in."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import Session, Turn
from chat.services import chats, turns
from tests.chat.services.test_attachments import PNG
from tests.factories import make_session, make_user
from tests.real_turns import answer_of
from tests.server_files import SECRET

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


async def image_chat(rt, user) -> Turn:
    """A new chat whose first message asks about an attached image; its first turn, finished."""
    upload = [("dot.png", io.BytesIO(PNG))]
    return await settled(
        rt,
        await chats.start_chat(engine=rt, owner=user, project=None, model=None, text="What is this?", uploads=upload),
    )


async def settled(rt, turn: Turn) -> Turn:
    await rt.turns.idle()
    return await Turn.objects.aget(pk=turn.pk)


async def test_a_chat_is_made_by_its_first_message_with_files_the_agent_reads_and_images_the_model_sees(claude_env, rt):
    user = await sync_to_async(make_user)()
    turn = await chats.start_chat(
        engine=rt,
        owner=user,
        project=None,
        model=None,
        text="read attachments/plan.txt",
        uploads=[("plan.txt", io.BytesIO(b"step one: tests\n"))],
    )
    turn = await settled(rt, turn)
    assert turn.status == Turn.Status.DONE, turn.error
    assert turn.attachments == ["attachments/plan.txt"]
    session = await Session.objects.aget(pk=turn.session_id)
    assert session.title == "read attachments/plan.txt"
    # The agent's Read tool read the file from the chat's working directory.
    assert "step one: tests" in await answer_of(turn)

    image_turn = await image_chat(rt, user)
    assert f"I see 1 image: image/png, {len(PNG)} bytes." in await answer_of(image_turn)


async def test_a_refused_first_message_leaves_no_chat_and_no_file(claude_env, settings, rt):
    user = await sync_to_async(make_user)()
    with pytest.raises(chats.ChatError, match="Type a message first"):
        await chats.start_chat(engine=rt, owner=user, project=None, model=None, text="  ")
    settings.CLAUDE_MAX_ATTACHMENT_MB = 0.001
    with pytest.raises(chats.ChatError, match="larger than 1 KB"):
        await chats.start_chat(
            engine=rt,
            owner=user,
            project=None,
            model=None,
            text="hi",
            uploads=[("ok.txt", io.BytesIO(b"fine")), ("big.txt", io.BytesIO(b"x" * 5000))],
        )
    assert not await Session.objects.filter(owner=user).aexists()
    folder = claude_env.workdir / str(user.pk) / "attachments"
    assert list(folder.iterdir()) == []


async def test_a_chats_model_is_one_of_the_offered_and_reaches_the_cli(claude_env, settings, rt):
    settings.CLAUDE_MODELS = ["claude-stand-in-small", "claude-stand-in-large"]
    user = await sync_to_async(make_user)()
    first = await settled(
        rt, await chats.start_chat(engine=rt, owner=user, project=None, model=None, text="which model")
    )
    assert "the model claude-stand-in-small" in await answer_of(first)

    session = await Session.objects.aget(pk=first.session_id)
    with pytest.raises(
        chats.ChatError, match=r"“gpt-9” is not a model this server offers\. Pick one of: claude-stand-in-small"
    ):
        await sync_to_async(chats.set_model)(session=session, model="gpt-9")
    await sync_to_async(chats.set_model)(session=session, model="claude-stand-in-large")
    second = await settled(
        rt, await turns.submit_message(engine=rt, session_id=session.id, user=user, text="which model")
    )
    assert "the model claude-stand-in-large" in await answer_of(second)


def test_with_no_models_offered_a_chat_uses_the_clis_default(db, settings):
    settings.CLAUDE_MODELS = []
    session = make_session(owner=make_user())
    assert session.model == "" and chats.default_model() == ""
    with pytest.raises(chats.ChatError, match="none \\(CLAUDE_MODELS is empty"):
        chats.set_model(session=session, model="opus")


@pytest.mark.parametrize("swapped", ["the image", "its folder"])
async def test_an_attached_image_the_agent_swaps_for_a_link_never_reaches_the_model(
    claude_env, server_files, stub_api, swapped, rt
):
    """The next message (with the image attached) is accepted while the file is still the image;
    then the agent's running command swaps it (or the attachments folder) for a link to the
    server's files before that message's turn reads it."""
    user = await sync_to_async(make_user)()
    first = await image_chat(rt, user)
    assert "I see 1 image" in await answer_of(first)
    session = await Session.objects.aget(pk=first.session_id)
    folder = Path(session.workdir) / "attachments"
    (server_files.folder / "dot.png").write_text(SECRET)  # what a link to the folder would find
    go = Path(session.workdir) / "go"
    swap = {
        "the image": f"ln -sf {server_files.key} {folder}/dot.png",
        "its folder": f"mv {folder} {folder}.old && ln -s {server_files.folder} {folder}",
    }[swapped]
    swapping = await turns.submit_message(
        engine=rt, session_id=session.id, user=user, text=f"run: while [ ! -e {go} ]; do sleep 0.05; done; {swap}"
    )
    start = len(stub_api.requests)
    looking = await turns.submit_message(
        engine=rt, session_id=session.id, user=user, text="What is this?", files=["attachments/dot.png"]
    )
    go.touch()

    assert (await settled(rt, swapping)).status == Turn.Status.DONE
    looked = await settled(rt, looking)
    assert looked.status == Turn.Status.DONE, looked.error
    assert os.path.islink(folder if swapped == "its folder" else folder / "dot.png")
    assert "I see" not in await answer_of(looked), "no image reached the model"
    sent = "\n".join(json.dumps(request["body"]) for request in stub_api.requests[start:])
    assert "dot.png" in sent and not server_files.leaked_in(sent)
