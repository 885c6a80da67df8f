"""Searching chats through the database's full-text index, on SQLite (FTS5) and on PostgreSQL.

The same tests run twice: here on the suite's SQLite, and, through the last test, against a
throw-away PostgreSQL cluster (DATABASE_URL pointing there, as in production).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from chat import search, selectors
from chat.models import Event, Session, Turn
from tests.chat.test_selectors import queries_of
from tests.factories import logged_in_client, make_session, make_user

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def workdir(settings, tmp_path):
    settings.CLAUDE_WORKDIR = tmp_path / "work"


def chat(owner, title: str = "", *, messages: list[tuple[str, str]] = (), minutes_ago: float = 0) -> Session:
    """A chat with (prompt, answer) turns; an empty answer adds no text."""
    session = make_session(owner=owner, title=title)
    for prompt, answer in messages:
        turn = Turn.objects.create(session=session, author=owner, prompt=prompt, status=Turn.Status.DONE)
        if answer:
            Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text=answer)
    Session.objects.filter(pk=session.pk).update(last_activity_at=timezone.now() - timedelta(minutes=minutes_ago))
    return session


def found(user, query: str, *, number: str | None = None, per_page: int = 25):
    return search.search_page(
        user=user, query=query, base=selectors.chat_list(user=user), number=number, per_page=per_page
    )


def titles(page) -> list[str]:
    return [c.title for c in page]


def test_every_word_must_be_in_the_chat_though_in_different_messages():
    ada, bob = make_user(), make_user()
    chat(ada, "Cluster", messages=[("rotate the certificates", ""), ("and then?", "Upgrade kubernetes first.")])
    chat(ada, "Kubernetes notes", messages=[("certificates expire yearly", "")])
    chat(ada, "Only one word", messages=[("kubernetes alone", "")])
    chat(ada, "Tool output", messages=[("ls", "")])
    Event.objects.create(
        turn=Turn.objects.get(session__title="Tool output"),
        kind=Event.Kind.TOOL_RESULT,
        text="kubernetes certificates in a tool's output",
    )
    chat(bob, "Bob's", messages=[("kubernetes certificates", "")])

    page = found(ada, "kubernetes certificates")
    assert sorted(titles(page)) == ["Cluster", "Kubernetes notes"]
    assert page.paginator.count == 2
    # A word finds longer words that start with it, in any case.
    assert sorted(titles(found(ada, "KUBER certif"))) == ["Cluster", "Kubernetes notes"]
    chat(ada, "Café", messages=[("un résumé", "")])
    assert titles(found(ada, "résumé")) == ["Café"]
    if connection.vendor == "sqlite":  # FTS5 folds accents too; PostgreSQL would need its unaccent extension
        assert titles(found(ada, "resume")) == ["Café"]
    assert titles(found(ada, "zebra")) == []


def test_titles_first_then_the_best_matching_message_with_its_passage_marked_and_escaped():
    ada = make_user()
    chat(
        ada,
        "Once",
        messages=[
            (
                "question",
                "A long answer that mentions deploy once among very many other "
                "words about the weather, lunch, trains and the garden.",
            )
        ],
        minutes_ago=1,
    )
    chat(ada, "Often", messages=[("second question", "Deploy <b>now</b> & deploy, deploy again.")], minutes_ago=2)
    chat(ada, "Deploy plans", messages=[("hello", "")], minutes_ago=3)

    page = found(ada, "deploy")
    assert titles(page) == ["Deploy plans", "Often", "Once"]
    by_title = {c.title: c.search_snippet for c in page}
    assert by_title["Deploy plans"] == ""  # only its title matched
    assert "<mark>deploy</mark>" in by_title["Once"].lower()
    assert "&amp; <mark>deploy</mark>" in by_title["Often"] and "<b>" not in by_title["Often"]
    if connection.vendor == "sqlite":  # PostgreSQL's parser leaves HTML tags out of the passage
        assert "&lt;b&gt;now&lt;/b&gt; &amp; <mark>deploy</mark>" in by_title["Often"]


def test_the_chat_list_shows_the_marked_passage():
    ada = make_user()
    chat(ada, "Mine", messages=[("how to <script>alert(1)</script> upgrade postgres", "")])
    page = logged_in_client(user=ada).get("/", {"q": "postgres"}).content.decode()
    assert "1 chat match" in page
    assert "<mark>postgres</mark>" in page and "<script>alert(1)" not in page
    if connection.vendor == "sqlite":  # PostgreSQL's parser leaves HTML tags out of the passage altogether
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_index_follows_every_change_to_messages():
    ada = make_user()
    session = chat(ada, "Live", messages=[("first", "")])
    turn = Turn.objects.get(session=session)
    # An answer streaming in is saved again and again.
    event = Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text="partial answ", complete=False)
    assert titles(found(ada, "answ")) == ["Live"]
    event.text = "partial answer about giraffes"
    event.complete = True
    event.save(update_fields=["text", "complete"])
    assert titles(found(ada, "giraffes")) == ["Live"]
    turn.prompt = "renamed prompt"
    turn.save()
    assert titles(found(ada, "first")) == [] and titles(found(ada, "renamed")) == ["Live"]
    # Rows written in bulk (imports, the benchmark) are indexed too.
    Turn.objects.bulk_create(Turn(session=session, prompt=f"bulk zeppelin {n}") for n in range(3))
    assert titles(found(ada, "zeppelin")) == ["Live"]
    # A chat given to someone else is found in their list, not the former owner's.
    bob = make_user()
    Session.objects.filter(pk=session.pk).update(owner=bob)
    assert titles(found(ada, "giraffes")) == [] and titles(found(bob, "giraffes")) == ["Live"]
    Session.objects.get(pk=session.pk).delete()
    assert titles(found(bob, "giraffes")) == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM chat_search")
            assert cursor.fetchone() == (0,), "a deleted chat leaves nothing in the index"


def test_a_page_of_matches_is_one_query(django_assert_num_queries):
    ada = make_user()
    for n in range(30):
        chat(ada, f"Chat {n:02}", messages=[(f"common word {n}", "")], minutes_ago=n)
    with django_assert_num_queries(1):
        first = found(ada, "common")
    assert len(first) == 25 and first.paginator.count == 30 and first.has_next()
    with django_assert_num_queries(1):
        second = found(ada, "common", number="2")
    assert titles(second) == [f"Chat {n:02}" for n in range(25, 30)] and not second.has_next()
    # Past the end: the last page, as the plain list does; not a number: the first.
    assert found(ada, "common", number="99").number == 2
    assert found(ada, "common", number="abc").number == 1


def test_sqlite_reads_the_fts5_index_and_scans_no_message_table():
    if connection.vendor != "sqlite":
        pytest.skip("reads SQLite's EXPLAIN QUERY PLAN")
    ada = make_user()
    chat(ada, "A", messages=[("needle in here", "and a needle there")])
    (query,) = queries_of(lambda: list(found(ada, "needle haystack")), table="chat_session")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + query[0], query[1])
        plan = "\n".join(row[-1] for row in cursor.fetchall())
    assert "SCAN chat_search VIRTUAL TABLE INDEX" in plan, plan
    assert "SCAN chat_turn" not in plan and "SCAN chat_event" not in plan and "SCAN U" not in plan, plan


def test_postgresql_reads_the_gin_indexes():
    if connection.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's EXPLAIN")
    ada = make_user()
    session = chat(ada, "Long", messages=[("a needle in here", "and a needle there")])
    made = Turn.objects.bulk_create(Turn(session=session, prompt=f"filler question {n}") for n in range(3000))
    Event.objects.bulk_create(
        Event(turn=turn, kind=Event.Kind.TEXT, text=f"filler answer {n}") for n, turn in enumerate(made)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_session, chat_turn, chat_event")
    (query,) = queries_of(lambda: list(found(ada, "needle")), table="chat_session")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query[0], query[1])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "chat_turn_prompt_fts" in plan and "chat_event_text_fts" in plan, plan
    assert titles(found(ada, "needle")) == ["Long"]


def test_the_search_tests_pass_on_postgresql_too(postgres_url):
    if connection.vendor == "postgresql":
        pytest.skip("this is the run on PostgreSQL")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-k",
            "not pass_on_postgresql",
            __file__,
            "tests/chat/web/test_chats.py::test_search_finds_titles_prompts_and_answers_of_own_chats_only",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "PASSED tests/chat/test_search.py::test_postgresql_reads_the_gin_indexes" in done.stdout, done.stdout[-3000:]


def test_a_word_counts_in_the_persons_newest_messages_that_hold_it(settings):
    """However many messages hold a word, the search reads only the newest few of the person's."""
    settings.CLAUDE_SEARCH_NEWEST = 3
    ada, bob = make_user(), make_user()
    chat(ada, "Older", messages=[("a common word, and a rare kumquat", "")], minutes_ago=10)
    chat(ada, "Newer", messages=[("common", "common again")] * 3, minutes_ago=5)
    # Someone else's newer messages take none of ada's places.
    chat(bob, "Bob's", messages=[("common", "common")] * 5)
    assert titles(found(ada, "common")) == ["Newer"]
    # A word in few messages is searched in full; titles always are.
    assert titles(found(ada, "kumquat")) == ["Older"]
    assert titles(found(ada, "older")) == ["Older"]
    settings.CLAUDE_SEARCH_NEWEST = 1000
    assert titles(found(ada, "common")) == ["Newer", "Older"]
    (older,) = found(ada, "kumquat")
    assert "and a rare <mark>kumquat</mark>" in older.search_snippet
