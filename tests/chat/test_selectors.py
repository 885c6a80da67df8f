"""The read side's hot queries use their indexes: what SQLite plans for them, and what they return."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chat import selectors
from chat.models import Event, Session, Turn
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db


def plan_of(query: tuple[str, tuple]) -> str:
    """SQLite's plan of a query as it ran, parameters bound (literals can plan differently), one step a line."""
    sql, params = query
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(row[-1] for row in cursor.fetchall())


def queries_of(run, *, table: str) -> list[tuple[str, tuple]]:
    """The queries ``run`` sends that read ``table``, as sent: SQL and parameters."""
    seen: list[tuple[str, tuple]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run()
    return [(sql, params) for sql, params in seen if f'FROM "{table}"' in sql]


def long_chat(count: int = 200) -> tuple[Session, list[Turn]]:
    chat = make_session(owner=make_user(), title="Long")
    start = timezone.now() - timedelta(days=1)
    # Some turns share an instant, as turns saved in one burst can.
    Turn.objects.bulk_create(
        Turn(
            session=chat, prompt=f"question {n}", status=Turn.Status.DONE, created_at=start + timedelta(seconds=n // 2)
        )
        for n in range(count)
    )
    made = list(Turn.objects.filter(session=chat).order_by("created_at", "id"))
    Event.objects.bulk_create(Event(turn=turn, kind=Event.Kind.TEXT, text=f"answer {n}") for n, turn in enumerate(made))
    return chat, made


@pytest.fixture(autouse=True)
def sqlite_only(settings, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("reads SQLite's EXPLAIN QUERY PLAN")
    settings.CLAUDE_WORKDIR = tmp_path / "work"


def test_the_latest_turns_of_a_chat_come_from_the_index_without_sorting_the_chat():
    chat, made = long_chat()
    (query,) = queries_of(lambda: selectors.latest_turns(session=chat), table="chat_turn")
    plan = plan_of(query)
    assert "USING INDEX chat_turn_session_latest" in plan, plan
    assert "TEMP B-TREE" not in plan, plan

    page = selectors.latest_turns(session=chat)
    assert [t.pk for t in page.turns] == [t.pk for t in made[-selectors.RECENT_TURNS :]] and page.has_older


def test_load_older_seeks_to_its_anchor_in_the_index_and_keeps_turns_of_the_same_instant():
    chat, made = long_chat()
    anchor = made[101]  # shares its instant with made[100]
    (query,) = queries_of(lambda: selectors.latest_turns(session=chat, before=anchor), table="chat_turn")
    plan = plan_of(query)
    assert "USING INDEX chat_turn_session_latest (session_id=? AND created_at<?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan

    page = selectors.latest_turns(session=chat, before=anchor)
    assert [t.pk for t in page.turns] == [t.pk for t in made[101 - selectors.RECENT_TURNS : 101]]
    oldest = selectors.latest_turns(session=chat, before=made[10])
    assert [t.pk for t in oldest.turns] == [t.pk for t in made[:10]] and not oldest.has_older
