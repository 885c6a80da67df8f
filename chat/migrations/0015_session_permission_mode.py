# The permission mode a chat runs in ("plan", or blank: the project's).
#
# Added with ALTER TABLE ADD COLUMN ... DEFAULT '' on every database, as 0012 does: Django would
# rebuild chat_session on SQLite for a NOT NULL field, and the search index's triggers (0010) refer
# to that table by name.

from django.db import migrations, models

ADD = "ALTER TABLE chat_session ADD COLUMN permission_mode varchar(20) NOT NULL DEFAULT ''"
DROP = "ALTER TABLE chat_session DROP COLUMN permission_mode"


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0014_project_access_may_work"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="session",
                    name="permission_mode",
                    field=models.CharField(blank=True, max_length=20),
                ),
            ],
        ),
    ]
