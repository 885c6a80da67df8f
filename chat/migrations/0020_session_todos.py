# The agent's todo list as the chat's panel shows it. Nullable with no default: Django adds it with
# ALTER TABLE on SQLite too, never rebuilding chat_session (the search index's triggers name it).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0019_rewind_files"),
    ]

    operations = [
        migrations.AddField(
            model_name="session",
            name="todos",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
