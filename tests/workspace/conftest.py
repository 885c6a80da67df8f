"""A member with a chat in their own folder (a real git repository), logged in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client

from chat.models import Session
from tests.factories import logged_in_client, make_session, make_user
from tests.task_helpers import init_repo


@dataclass
class Desk:
    user: object
    session: Session
    folder: Path
    client: Client

    def url(self, name: str = "files", **query: str) -> str:
        from urllib.parse import urlencode

        from django.urls import reverse

        base = reverse(f"workspace:{name}", args=["chat", str(self.session.pk)])
        return f"{base}?{urlencode(query)}" if query else base


@pytest.fixture
def desk(db, settings, tmp_path) -> Desk:
    settings.CLAUDE_WORKDIR = tmp_path / "work"
    user = make_user()
    folder = init_repo(tmp_path / "work" / str(user.pk))
    session = make_session(owner=user)
    assert Path(session.workdir) == folder
    return Desk(user=user, session=session, folder=folder, client=logged_in_client(user=user))


@pytest.fixture(autouse=True)
def _no_terminal_left():
    """Every terminal a test opened ends with it (its shell and sandbox included)."""
    yield
    from workspace.services import terminals

    terminals.end_all()
