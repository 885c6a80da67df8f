# The full-text index the chat list's search reads (chat/search.py), kept in step by the database.
#
# SQLite: an FTS5 table of prompts and assistant texts, filled by triggers on chat_turn and
# chat_event (so bulk inserts, updates and cascading deletes keep it right too) and from what is
# there now. A document's rowid is 2 × the turn's id for a prompt, 2 × the event's id + 1 for a text.
# PostgreSQL: GIN indexes on to_tsvector('simple', ...) of the same columns, built from the same
# django.contrib.postgres expressions the search queries use, so the planner matches them.
# Neither has model state: nothing here changes what makemigrations sees.
# Trap: on SQLite, a later migration that rebuilds chat_turn, chat_event or chat_session (Django
# does so for most field changes) drops these triggers with the old table: run SQLITE's triggers
# again after it (the search tests of new turns catch a missing one).

from django.db import migrations

_TURN_DOC = """
    INSERT INTO chat_search (rowid, body, session_id, owner_id)
    SELECT new.id * 2, new.prompt, new.session_id, s.owner_id FROM chat_session s WHERE s.id = new.session_id;
"""
_EVENT_DOC = """
    INSERT INTO chat_search (rowid, body, session_id, owner_id)
    SELECT new.id * 2 + 1, new.text, t.session_id, s.owner_id
    FROM chat_turn t JOIN chat_session s ON s.id = t.session_id WHERE t.id = new.turn_id AND new.kind = 'text';
"""

SQLITE = [
    "CREATE VIRTUAL TABLE chat_search USING fts5("
    "body, session_id UNINDEXED, owner_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER chat_search_turn_added AFTER INSERT ON chat_turn BEGIN {_TURN_DOC} END",
    "CREATE TRIGGER chat_search_turn_changed AFTER UPDATE OF prompt ON chat_turn WHEN old.prompt IS NOT new.prompt "
    f"BEGIN DELETE FROM chat_search WHERE rowid = old.id * 2; {_TURN_DOC} END",
    "CREATE TRIGGER chat_search_turn_deleted AFTER DELETE ON chat_turn "
    "BEGIN DELETE FROM chat_search WHERE rowid = old.id * 2; END",
    # Streaming text is saved every fraction of a second: each save replaces its document.
    f"CREATE TRIGGER chat_search_event_added AFTER INSERT ON chat_event WHEN new.kind = 'text' BEGIN {_EVENT_DOC} END",
    "CREATE TRIGGER chat_search_event_changed AFTER UPDATE OF text, kind ON chat_event "
    "WHEN old.text IS NOT new.text OR old.kind IS NOT new.kind "
    f"BEGIN DELETE FROM chat_search WHERE rowid = old.id * 2 + 1; {_EVENT_DOC} END",
    "CREATE TRIGGER chat_search_event_deleted AFTER DELETE ON chat_event WHEN old.kind = 'text' "
    "BEGIN DELETE FROM chat_search WHERE rowid = old.id * 2 + 1; END",
    # A chat given to someone else (in the admin) is found in their list from then on.
    "CREATE TRIGGER chat_search_owner_changed AFTER UPDATE OF owner_id ON chat_session "
    "WHEN old.owner_id IS NOT new.owner_id "
    "BEGIN UPDATE chat_search SET owner_id = new.owner_id WHERE session_id = new.id; END",
    "INSERT INTO chat_search (rowid, body, session_id, owner_id) "
    "SELECT t.id * 2, t.prompt, t.session_id, s.owner_id FROM chat_turn t JOIN chat_session s ON s.id = t.session_id",
    "INSERT INTO chat_search (rowid, body, session_id, owner_id) "
    "SELECT e.id * 2 + 1, e.text, t.session_id, s.owner_id FROM chat_event e "
    "JOIN chat_turn t ON t.id = e.turn_id JOIN chat_session s ON s.id = t.session_id WHERE e.kind = 'text'",
]
SQLITE_REVERSE = [
    *(f"DROP TRIGGER IF EXISTS chat_search_{name}" for name in (
        "turn_added", "turn_changed", "turn_deleted", "event_added", "event_changed", "event_deleted", "owner_changed")),
    "DROP TABLE IF EXISTS chat_search",
]


def _postgres_indexes(apps):
    from django.contrib.postgres.indexes import GinIndex
    from django.contrib.postgres.search import SearchVector
    from django.db.models import Q

    # config "simple": words as written, no stemming and no stop words, as on SQLite.
    return [
        (apps.get_model("chat", "Turn"), GinIndex(SearchVector("prompt", config="simple"), name="chat_turn_prompt_fts")),
        (apps.get_model("chat", "Event"), GinIndex(SearchVector("text", config="simple"), name="chat_event_text_fts",
                                                   condition=Q(kind="text"))),
    ]


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        for model, index in _postgres_indexes(apps):
            schema_editor.add_index(model, index)


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        for model, index in _postgres_indexes(apps):
            schema_editor.remove_index(model, index)


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0009_turn_latest_index"),
    ]

    operations = [
        migrations.RunPython(create, drop),
    ]
