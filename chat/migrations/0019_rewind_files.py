# Rewinding files: the uuid each turn's user message went to the CLI with, and a chat's pending
# file restore. Added with ALTER TABLE ADD COLUMN ... DEFAULT '' on every database, as 0012 does (no
# rebuild of the tables the search index's triggers name).

from django.db import migrations, models

TEXT_COLUMNS = [
    ("chat_turn", "prompt_uuid"),
    ("chat_session", "restore_files_at"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0018_rewind_and_fork"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE {table} ADD COLUMN {column} varchar(36) NOT NULL DEFAULT ''",
                    f"ALTER TABLE {table} DROP COLUMN {column}",
                )
                for table, column in TEXT_COLUMNS
            ],
            state_operations=[
                migrations.AddField(
                    model_name="turn", name="prompt_uuid", field=models.CharField(blank=True, max_length=36)
                ),
                migrations.AddField(
                    model_name="session", name="restore_files_at", field=models.CharField(blank=True, max_length=36)
                ),
            ],
        ),
    ]
