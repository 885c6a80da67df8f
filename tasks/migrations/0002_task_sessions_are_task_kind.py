# The sessions of existing tasks are marked as such: they take messages only as their task's
# follow-ups and are listed on their task's page, not among a person's chats.

from django.db import migrations


def mark_task_sessions(apps, schema_editor):
    Task = apps.get_model("tasks", "Task")
    Session = apps.get_model("chat", "Session")
    Session.objects.filter(pk__in=Task.objects.exclude(session=None).values("session")).update(kind="task")


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0001_initial"),
        ("chat", "0004_session_kind"),
    ]

    operations = [
        migrations.RunPython(mark_task_sessions, migrations.RunPython.noop),
    ]
