# Rewind and fork: the transcript entry each turn ended at, the turns a rewind left behind, a
# chat's pending rewind point, and where a fork came from.
#
# The NOT NULL text columns are added with ALTER TABLE ADD COLUMN ... DEFAULT '' on every database,
# as 0012 does: Django would rebuild the tables on SQLite, and the search index's triggers (0010)
# refer to them by name. The nullable ones Django adds with ALTER TABLE itself.

import django.db.models.deletion
from django.db import migrations, models

TEXT_COLUMNS = [
    ("chat_turn", "cli_uuid", "varchar(36)"),
    ("chat_session", "resume_at", "varchar(36)"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0017_turn_command"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE {table} ADD COLUMN {column} {kind} NOT NULL DEFAULT ''",
                    f"ALTER TABLE {table} DROP COLUMN {column}",
                )
                for table, column, kind in TEXT_COLUMNS
            ],
            state_operations=[
                migrations.AddField(
                    model_name="turn", name="cli_uuid", field=models.CharField(blank=True, max_length=36)
                ),
                migrations.AddField(
                    model_name="session", name="resume_at", field=models.CharField(blank=True, max_length=36)
                ),
            ],
        ),
        migrations.AddField(
            model_name="turn", name="dropped_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="session",
            name="forked_from",
            field=models.ForeignKey(
                blank=True,
                null=True,
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="forks",
                to="chat.session",
            ),
        ),
        migrations.AddField(
            model_name="session",
            name="forked_after",
            field=models.ForeignKey(
                blank=True,
                null=True,
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="chat.turn",
            ),
        ),
    ]
