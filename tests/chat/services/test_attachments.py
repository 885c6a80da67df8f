"""Files attached to messages: where they land, what they are named, what the model gets."""

from __future__ import annotations

import base64
import io
import os

import pytest

from chat.services import attachments, chats
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def chat(claude_env):
    return make_session(owner=make_user())


@pytest.mark.parametrize(
    ("uploaded", "saved"),
    [
        ("report.txt", "report.txt"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\secret.ini", "secret.ini"),
        (".bashrc", "bashrc"),
        ("my résumé (final).PDF", "my-r-sum-final.PDF"),
        ("@notes.md", "notes.md"),
        ("..", "file"),
        ("", "file"),
        ("/", "file"),
    ],
)
def test_a_saved_name_is_one_plain_name_in_the_attachments_folder(chat, uploaded, saved):
    result = attachments.save(session=chat, name=uploaded, data=io.BytesIO(b"x"))
    assert result.path == f"attachments/{saved}"
    with open(os.path.join(chat.workdir, result.path), "rb") as file:
        assert file.read() == b"x"


def test_a_second_file_of_the_same_name_does_not_overwrite_the_first(chat):
    first = attachments.save(session=chat, name="a.txt", data=io.BytesIO(b"one"))
    second = attachments.save(session=chat, name="a.txt", data=io.BytesIO(b"two"))
    assert (first.path, second.path) == ("attachments/a.txt", "attachments/a-2.txt")
    assert open(os.path.join(chat.workdir, first.path)).read() == "one"


def test_a_file_over_the_limit_is_refused_and_not_kept(chat, settings):
    settings.CLAUDE_MAX_ATTACHMENT_MB = 0.001  # about 1 KB
    with pytest.raises(attachments.AttachmentRefused, match=r"larger than 1 KB.*CLAUDE_MAX_ATTACHMENT_MB"):
        attachments.save(session=chat, name="big.bin", data=io.BytesIO(b"x" * 5000))
    assert os.listdir(os.path.join(chat.workdir, "attachments")) == []


def test_a_link_the_agent_put_in_place_of_the_folder_is_not_followed(chat, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(chat.workdir, "attachments"))
    with pytest.raises(attachments.AttachmentRefused, match="not a plain folder"):
        attachments.save(session=chat, name="a.txt", data=io.BytesIO(b"x"))
    assert list(outside.iterdir()) == []


def test_a_message_may_name_only_files_of_its_chats_attachments_folder(chat, tmp_path):
    saved = attachments.save(session=chat, name="a.txt", data=io.BytesIO(b"x"))
    assert attachments.validate(session=chat, paths=saved.path) == ["attachments/a.txt"]
    assert attachments.validate(session=chat, paths=[saved.path, saved.path]) == ["attachments/a.txt"]
    assert attachments.validate(session=chat, paths=None) == []
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", os.path.join(chat.workdir, "attachments", "link.txt"))
    for bad in ["attachments/../../secret", "/etc/passwd", "attachments/missing.txt", "attachments/link.txt"]:
        with pytest.raises(attachments.AttachmentRefused, match="no longer in the chat's working directory"):
            attachments.validate(session=chat, paths=[bad])
    with pytest.raises(attachments.AttachmentRefused, match="could not read"):
        attachments.validate(session=chat, paths={"a": 1})


def test_images_become_image_blocks_and_other_files_are_only_named(chat, tmp_path):
    image = attachments.save(session=chat, name="dot.png", data=io.BytesIO(PNG))
    text = attachments.save(session=chat, name="notes.txt", data=io.BytesIO(b"hi"))
    (tmp_path / "secret.png").write_bytes(PNG)
    os.symlink(tmp_path / "secret.png", os.path.join(chat.workdir, "attachments", "swapped.png"))
    blocks = attachments.image_blocks(session=chat, paths=[image.path, text.path, "attachments/swapped.png"])
    assert blocks == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
        }
    ]
    assert attachments.note([image.path, text.path]) == (
        "\n\n(Attached files, saved in the working directory: attachments/dot.png, attachments/notes.txt)"
    )


KB = 1024


def test_a_members_attachments_may_take_only_so_much_and_a_refusal_says_how_much_is_used(chat, settings):
    settings.CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER = 10 * KB / (1024 * 1024)  # 10 KB
    other_chat = make_session(owner=chat.owner)
    attachments.save(session=chat, name="a.bin", data=io.BytesIO(b"x" * 4 * KB))
    attachments.save(session=other_chat, name="b.bin", data=io.BytesIO(b"x" * 4 * KB))  # every chat of theirs counts
    assert attachments.stored_bytes(owner_id=chat.owner_id) == 8 * KB
    with pytest.raises(attachments.AttachmentRefused) as refused:
        attachments.save(session=chat, name="c.bin", data=io.BytesIO(b"x" * 3 * KB))
    assert str(refused.value) == (
        "“c.bin” was not attached: your attachments already take 8 KB of the 10 KB a member may store "
        "(CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER), and its 3 KB would go over that. Delete chats you no longer "
        "need (their attached files go with them), or ask an admin to raise the limit."
    )
    assert sorted(os.listdir(os.path.join(chat.workdir, "attachments"))) == ["a.bin", "b.bin"]
    assert attachments.stored_bytes(owner_id=chat.owner_id) == 8 * KB
    attachments.save(session=chat, name="d.bin", data=io.BytesIO(b"x" * 2 * KB))  # what fits still goes
    # Another member's room is their own.
    theirs = make_session(owner=make_user())
    attachments.save(session=theirs, name="e.bin", data=io.BytesIO(b"x" * 9 * KB))


def test_deleting_a_chat_removes_its_attached_files_and_gives_their_room_back(chat, settings, rt):
    settings.CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER = 10 * KB / (1024 * 1024)
    kept_chat = make_session(owner=chat.owner)
    kept = attachments.save(session=kept_chat, name="keep.txt", data=io.BytesIO(b"x" * 2 * KB))
    gone = attachments.save(session=chat, name="old.bin", data=io.BytesIO(b"x" * 7 * KB))
    with pytest.raises(attachments.AttachmentRefused):
        attachments.save(session=kept_chat, name="new.bin", data=io.BytesIO(b"x" * 5 * KB))
    chats.delete_session(engine=rt, session=chat)
    assert not os.path.exists(os.path.join(chat.workdir, gone.path))
    assert os.path.exists(os.path.join(chat.workdir, kept.path))
    assert attachments.stored_bytes(owner_id=chat.owner_id) == 2 * KB
    attachments.save(session=kept_chat, name="new.bin", data=io.BytesIO(b"x" * 5 * KB))


def test_a_fifo_or_a_linked_folder_in_place_of_an_image_is_never_read(chat, tmp_path):
    """What the agent can put where an attached image was, between the message and its turn: a
    FIFO (a reader would wait for a writer for ever) or a link in place of the attachments folder."""
    fifo = attachments.save(session=chat, name="pipe.png", data=io.BytesIO(PNG))
    folder = os.path.join(chat.workdir, "attachments")
    os.unlink(os.path.join(chat.workdir, fifo.path))
    os.mkfifo(os.path.join(chat.workdir, fifo.path))
    assert attachments.image_blocks(session=chat, paths=[fifo.path]) == []
    with pytest.raises(attachments.AttachmentRefused, match="no longer in the chat's working directory"):
        attachments.validate(session=chat, paths=[fifo.path])

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "dot.png").write_bytes(PNG)
    os.rename(folder, folder + ".old")
    os.symlink(outside, folder)
    assert attachments.image_blocks(session=chat, paths=["attachments/dot.png"]) == []
    with pytest.raises(attachments.AttachmentRefused, match="no longer in the chat's working directory"):
        attachments.validate(session=chat, paths=["attachments/dot.png"])
    attachments.remove(session=chat, path="attachments/dot.png")
    assert (outside / "dot.png").read_bytes() == PNG
