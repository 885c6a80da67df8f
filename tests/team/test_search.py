"""Team search: staff find every member's chats and tasks through the full-text index; members may not."""

from __future__ import annotations

import pytest

from chat.models import Turn
from tasks.models import Task
from tests.factories import logged_in_client, make_session, make_user

pytestmark = pytest.mark.django_db


def test_staff_find_everyones_chats_and_tasks_and_members_are_refused(tmp_path):
    ada, bob = make_user(username="ada"), make_user(username="bob")
    for owner, title in ((ada, "Breakfast"), (bob, "Shopping"), (bob, "Unrelated")):
        chat = make_session(owner=owner, title=title, workdir=tmp_path)
        Turn.objects.create(session=chat, prompt="buy marmalade" if title != "Unrelated" else "buy bread")
    task_session = make_session(owner=bob, title="Jam task", workdir=tmp_path)
    Turn.objects.create(session=task_session, prompt="write jam.txt: marmalade recipe")
    task = Task.objects.create(
        title="Jam task",
        prompt="x",
        project="default",
        repo_path=str(tmp_path),
        base_branch="main",
        session=task_session,
    )

    staff = logged_in_client(user=make_user(username="root", is_staff=True))
    page = staff.get("/team/search/?q=marmalade").content.decode()
    assert '<p id="team-total">3 matches</p>' in page
    assert 'Breakfast</a> <span class="badge">chat</span> <span class="hint">ada' in page
    assert f'href="/tasks/{task.pk}/">Jam task</a> <span class="badge">task #{task.pk}</span>' in page
    assert "<mark>marmalade</mark>" in page and "Unrelated" not in page

    member = logged_in_client(user=ada)
    refused = member.get("/team/search/?q=marmalade")
    assert refused.status_code == 403 and "only staff may use it" in refused.content.decode()
    assert 'href="/team/search/"' not in member.get("/team/usage/").content.decode()
