"""Reviewing a task's diff: comments on lines kept as drafts, one follow-up carrying them all, and
the run after it marking the comments whose lines it changed. Runs on the stand-in CLI process
(``fake_cli``): a ``write PATH: CONTENT`` message writes the file; real git in tmp_path."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Turn
from tasks import services
from tasks.models import ReviewComment, Task
from tests.api_client import EngineClient
from tests.factories import make_user
from tests.task_helpers import settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]

FIVE_LINES = "alpha\nbeta\ngamma\ndelta\nepsilon"


async def browser_for(user, engine) -> EngineClient:
    client = EngineClient(engine=engine)
    await client.aforce_login(user)
    return client


async def _completed_task(rt, user) -> Task:
    task = await services.create_task(engine=rt, user=user, prompt=f"write notes.txt: {FIVE_LINES}", title="Notes")
    task = await settled(rt.tasks, task)
    assert task.status == Task.Status.COMPLETED, task.error
    return task


def _comment(client, task, line: str, text: str, *, side: str = "new", end: str | None = None):
    return client.post(
        f"/tasks/{task.pk}/review/comments/",
        {"path": "notes.txt", "side": side, "start": line, "end": end or line, "text": text},
        headers={"HX-Request": "true"},
    )


async def test_two_comments_go_in_one_follow_up_and_the_next_run_marks_what_it_changed(fake_repo, user, rt):
    task = await _completed_task(rt, user)
    client = await browser_for(user, rt)
    diff = (await client.get(f"/tasks/{task.pk}/diff/")).content.decode()
    assert '<ins class="line add">+beta</ins>' in diff
    # Every line of the added file is numbered, and the numbers are the buttons that pick it.
    assert 'data-side="new" data-line="2" aria-label="Comment on line 2 (new version)">2</button>' in diff
    assert '<nav class="diff-tree" aria-label="Files changed">' in diff and 'href="#diff-file-1"' in diff

    first = (await _comment(client, task, "2", "Capitalise this one.")).content.decode()
    assert "Comment on notes.txt, line 2 kept as a draft" in first
    second = (await _comment(client, task, "1", "Keep alpha as it is.")).content.decode()
    assert "2 draft comments: they go to the agent together" in second and "Send review (2)" in second
    assert second.count('<span class="badge review-draft">Draft</span>') == 2
    turns_before = await Turn.objects.filter(session_id=task.session_id).acount()

    sent = await client.post(
        f"/tasks/{task.pk}/review/send/",
        {"note": "write notes.txt: alpha\nBETA\ngamma\ndelta\nepsilon"},
        headers={"HX-Request": "true"},
    )
    assert "Review sent: 2 comments in one follow-up." in sent.content.decode()
    await settled(rt.tasks, task)
    runs = [t async for t in Turn.objects.filter(session_id=task.session_id).order_by("created_at", "id")]
    assert len(runs) == turns_before + 1  # ONE follow-up for both comments
    follow_up = runs[-1].prompt
    assert "Review of your changes (2 comments)" in follow_up
    assert "1. notes.txt, line 1:\n    > alpha\n    Keep alpha as it is." in follow_up
    assert "2. notes.txt, line 2:\n    > beta\n    Capitalise this one." in follow_up

    after = (await client.get(f"/tasks/{task.pk}/diff/")).content.decode()
    # The run replaced line 2 and left line 1: only the comment on line 2 is addressed.
    states = {c.text: c.state async for c in ReviewComment.objects.filter(task=task)}
    assert states == {"Capitalise this one.": "addressed", "Keep alpha as it is.": "unaddressed"}
    assert after.count("Addressed by the run") == 1 and after.count("Not changed by the run") == 1
    assert "Send review" not in after  # no drafts left


async def test_a_range_a_side_by_side_view_and_refusals(fake_repo, user, rt):
    task = await _completed_task(rt, user)
    client = await browser_for(user, rt)
    ranged = (await _comment(client, task, "4", "These two go.", end="3")).content.decode()
    assert "Comment on notes.txt, lines 3–4 kept as a draft" in ranged
    comment = await ReviewComment.objects.aget(task=task)
    assert (comment.start_line, comment.end_line, comment.excerpt) == (3, 4, "gamma\ndelta")

    split = (await client.get(f"/tasks/{task.pk}/diff/?view=split")).content.decode()
    assert 'class="review-diff split"' in split and 'aria-pressed="true">Side by side' in split
    # The added file faces nothing on the left: its old side is empty, its new side numbered.
    assert '<td class="ln"></td><td class="code"></td>' in split.replace("\n", "").replace("  ", "")
    # The view picked is kept: the diff the page reloads when the task changes shows it too.
    assert 'class="review-diff split"' in (await client.get(f"/tasks/{task.pk}/diff/")).content.decode()

    gone = (await _comment(client, task, "40", "Nowhere.")).content.decode()
    assert "Line 40 of notes.txt (new version) is not in the diff any more" in gone
    empty = (await _comment(client, task, "1", "   ")).content.decode()
    assert "Type the comment first" in empty
    other = await browser_for(await sync_to_async(make_user)(), rt)
    assert (await _comment(other, task, "1", "Mine?")).status_code == 404  # not theirs to see
    assert await ReviewComment.objects.filter(task=task).acount() == 1

    removed = await client.post(
        f"/tasks/{task.pk}/review/comments/{comment.pk}/delete/", headers={"HX-Request": "true"}
    )
    assert "Draft comment removed." in removed.content.decode()
    nothing = await client.post(f"/tasks/{task.pk}/review/send/", headers={"HX-Request": "true"})
    assert "There is no draft comment to send" in nothing.content.decode()


async def test_a_reviews_follow_up_reaches_the_agent_through_the_real_cli(repo, scheduler, user, stub_api, rt):
    from devtools.stub_steps import user_text as _user_text

    task = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt=f"write notes.txt: {FIVE_LINES}")
    )
    assert task.status == Task.Status.COMPLETED, task.error
    client = await browser_for(user, rt)
    await _comment(client, task, "2", "Capitalise this one.")
    await _comment(client, task, "4", "And these.", end="5")
    await client.post(
        f"/tasks/{task.pk}/review/send/",
        {"note": "write notes.txt: alpha\nBETA\ngamma\nDELTA\nEPSILON"},
        headers={"HX-Request": "true"},
    )
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    said = [
        _user_text(message)
        for request in stub_api.requests
        for message in request["body"].get("messages", [])
        if message.get("role") == "user"
    ]
    review = next(text for text in said if "Review of your changes (2 comments)" in text)
    assert "1. notes.txt, line 2:\n    > beta\n    Capitalise this one." in review
    assert "2. notes.txt, lines 4–5:\n    > delta\n    > epsilon\n    And these." in review
    assert {c.text: c.state async for c in ReviewComment.objects.filter(task=task)} == {
        "Capitalise this one.": "addressed",
        "And these.": "addressed",
    }
