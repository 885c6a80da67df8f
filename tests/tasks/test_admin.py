"""Tasks in the admin: staff see them, read-only."""

from __future__ import annotations

import pytest

from tests.factories import logged_in_client, make_user

pytestmark = pytest.mark.django_db


def test_staff_see_tasks():
    client = logged_in_client(user=make_user(is_staff=True))
    assert client.get("/admin/tasks/task/").status_code == 200


def test_staff_read_the_audit_rows_and_cannot_change_them():
    from tasks.models import Task, TaskEvent, TaskTransition

    staff = make_user(is_staff=True)
    task = Task.objects.create(title="T", prompt="p", project="default", repo_path="/x", base_branch="main")
    row = TaskTransition.objects.create(
        task=task, from_status="completed", to_status="merged", event=TaskEvent.MERGE, by=staff, why="into main"
    )
    client = logged_in_client(user=staff)
    listing = client.get("/admin/tasks/tasktransition/").content.decode()
    assert "into main" in listing and staff.username in listing
    assert "/admin/tasks/tasktransition/add/" not in listing
    assert client.post(f"/admin/tasks/tasktransition/{row.pk}/change/", {"why": "edited"}).status_code == 403
    assert client.post(f"/admin/tasks/tasktransition/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert TaskTransition.objects.get(pk=row.pk).why == "into main"
    # The task's own page lists its rows too.
    assert "into main" in client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()
