# Each chat's CLI config folder of its own, and who may use a shared project.

import shutil
from pathlib import Path

from django.conf import settings
from django.db import migrations, models

from drivers.claude.paths import transcript_path


def own_config_folders(apps, schema_editor):
    """Each existing chat gets a CLI config folder of its own; its transcript (and the folder the
    CLI keeps beside it) moves there, so no chat's agent sees another's. Chats in a shared project
    are marked with its key."""
    Session = apps.get_model("chat", "Session")
    root = Path(settings.CLAUDE_CONFIG_DIR)
    projects = {str(path): key for key, path in settings.CLAUDE_PROJECTS.items() if key != "default"}
    for session in Session.objects.filter(config_dir=""):
        config = root / str(session.owner_id) / str(session.id)
        new = transcript_path(config, session.workdir, str(session.id))
        old = Path(session.transcript_path) if session.transcript_path else None
        if old is not None and old != new:
            for source, target in ((old, new), (old.with_suffix(""), new.with_suffix(""))):
                if source.exists() and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(source), str(target))
        session.config_dir = str(config)
        session.transcript_path = str(new)
        session.project = projects.get(session.workdir, "")
        session.save(update_fields=["config_dir", "transcript_path", "project"])


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('chat', '0002_task_moved_to_tasks_app'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='session',
            name='config_dir',
            field=models.CharField(blank=True, max_length=1024, verbose_name='CLI config folder'),
        ),
        migrations.AddField(
            model_name='session',
            name='project',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.CreateModel(
            name='ProjectAccess',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('project', models.CharField(max_length=64, unique=True)),
                ('everyone', models.BooleanField(default=False, verbose_name='every member')),
                ('groups', models.ManyToManyField(blank=True, related_name='project_access', to='auth.group')),
                ('users', models.ManyToManyField(blank=True, related_name='project_access', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'project access',
                'verbose_name_plural': 'project access',
            },
        ),
        migrations.RunPython(own_config_folders, migrations.RunPython.noop),
    ]
