# Task now lives in the tasks app (tasks/migrations/0001_initial): drop it from this app's
# state only; the table chat_task and its rows stay. Its content type follows it, so admin
# history and permissions keep pointing at it.

from django.db import migrations


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="tasks", model="task").exists():
        ContentType.objects.filter(app_label="chat", model="task").update(app_label="tasks")


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="chat", model="task").exists():
        ContentType.objects.filter(app_label="tasks", model="task").update(app_label="chat")


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0001_initial'),
        ('tasks', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name='Task')],
        ),
        migrations.RunPython(move_content_type, restore_content_type),
    ]
