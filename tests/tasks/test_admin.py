"""Tasks in the admin: staff see them, read-only."""

from __future__ import annotations

import pytest

from tests.factories import logged_in_client, make_user

pytestmark = pytest.mark.django_db


def test_staff_see_tasks():
    client = logged_in_client(user=make_user(is_staff=True))
    assert client.get("/admin/tasks/task/").status_code == 200
