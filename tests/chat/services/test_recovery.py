"""After a restart: leftover CLI processes of unfinished turns end, and only they."""

from __future__ import annotations

import pytest

from chat.models import Turn
from chat.services import recovery
from drivers import claude
from tests.factories import make_session, make_user
from tests.processes import running, spawn_named

pytestmark = pytest.mark.django_db


def test_a_process_that_only_has_the_recorded_id_is_left_alone(tmp_path):
    """A pid is reused after a reboot or a long time: the start time tells the processes apart."""
    chat = make_session(owner=make_user(), workdir=tmp_path)
    bystander = spawn_named("claude-lookalike")
    try:
        started = claude.process_start_time(bystander.pid)
        assert started is not None
        Turn.objects.create(
            session=chat, prompt="a", status=Turn.Status.RUNNING, pid=bystander.pid, pid_started=started - 1
        )

        assert recovery.recover_interrupted() == 1
        assert running(bystander.pid)
        assert Turn.objects.get(session=chat).status == Turn.Status.INTERRUPTED
    finally:
        bystander.kill()
        bystander.wait()


def test_the_recorded_process_is_ended(tmp_path):
    chat = make_session(owner=make_user(), workdir=tmp_path)
    orphan = spawn_named("claude-orphan")
    Turn.objects.create(
        session=chat,
        prompt="a",
        status=Turn.Status.RUNNING,
        pid=orphan.pid,
        pid_started=claude.process_start_time(orphan.pid),
    )
    assert recovery.recover_interrupted() == 1
    assert orphan.wait(5) != 0
