# The slash command a turn runs (chosen from the message box's menu); blank: the prompt is text.
#
# Added with ALTER TABLE ADD COLUMN ... DEFAULT '' on every database, as 0012 does: Django would
# rebuild chat_turn on SQLite for a NOT NULL field, and the search index's triggers (0010) refer to
# that table by name.

from django.db import migrations, models

ADD = "ALTER TABLE chat_turn ADD COLUMN command varchar(64) NOT NULL DEFAULT ''"
DROP = "ALTER TABLE chat_turn DROP COLUMN command"


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0016_session_context"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="turn",
                    name="command",
                    field=models.CharField(blank=True, max_length=64),
                ),
            ],
        ),
    ]
