# Where a turn came from (the chat page, the API, a task), which says how it runs: an engine can
# then run a turn knowing nothing but its id.
#
# The column is added with ALTER TABLE ADD COLUMN ... DEFAULT 'page' on every database: Django would
# rebuild chat_turn on SQLite for a NOT NULL field, and the search index's triggers (0010) refer to
# that table by name. The database keeps the default; the model always gives a value of its own.

from django.db import migrations, models

ADD = "ALTER TABLE chat_turn ADD COLUMN origin varchar(8) NOT NULL DEFAULT 'page'"
DROP = "ALTER TABLE chat_turn DROP COLUMN origin"


def task_turns_came_from_tasks(apps, schema_editor):
    # Every turn of a task's session is one of its runs (a task's session takes no chat messages).
    apps.get_model("chat", "Turn").objects.filter(session__kind="task").update(origin="task")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0011_attachment"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="turn",
                    name="origin",
                    field=models.CharField(
                        choices=[("page", "Chat page"), ("api", "HTTP API"), ("task", "Task")],
                        default="page",
                        max_length=8,
                    ),
                ),
            ],
        ),
        migrations.RunPython(task_turns_came_from_tasks, migrations.RunPython.noop),
    ]
