# The Task model moved here from the chat app: its table (chat_task) and rows stay as they are,
# only Django's idea of which app owns it changes (see chat/migrations/0002_task_moved_to_tasks_app).

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('chat', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Task',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('title', models.CharField(max_length=120)),
                        ('prompt', models.TextField()),
                        ('project', models.CharField(max_length=100)),
                        ('repo_path', models.CharField(max_length=1024, verbose_name='repository')),
                        ('base_branch', models.CharField(max_length=255)),
                        ('priority', models.IntegerField(db_index=True, default=0)),
                        ('skip_permissions', models.BooleanField(default=False, verbose_name='skip permissions')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('queued', 'Queued'), ('running', 'Running'), ('paused', 'Paused'), ('completed', 'Completed'), ('failed', 'Failed'), ('merged', 'Merged'), ('cancelled', 'Cancelled')], db_index=True, default='pending', max_length=16)),
                        ('reason', models.CharField(blank=True, choices=[('', '—'), ('user', 'Paused by a person'), ('conflict', 'Waits for another task to be merged'), ('attention', 'Needs attention: the rebase conflicts'), ('interrupted', 'Interrupted by a server restart')], default='', max_length=16)),
                        ('error', models.TextField(blank=True)),
                        ('worktree_path', models.CharField(blank=True, max_length=1024)),
                        ('branch', models.CharField(blank=True, max_length=255)),
                        ('next_prompt', models.TextField(blank=True)),
                        ('files_changed', models.JSONField(blank=True, default=list)),
                        ('conflict_files', models.JSONField(blank=True, default=list)),
                        ('input_tokens', models.PositiveBigIntegerField(default=0)),
                        ('output_tokens', models.PositiveBigIntegerField(default=0)),
                        ('cost_usd', models.FloatField(default=0.0)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('queued_at', models.DateTimeField(blank=True, null=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('merged_at', models.DateTimeField(blank=True, null=True)),
                        ('conflict_with', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='blocking', to='tasks.task')),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='claude_tasks', to=settings.AUTH_USER_MODEL)),
                        ('session', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='task', to='chat.session')),
                    ],
                    options={
                        'db_table': 'chat_task',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['status', '-priority', 'queued_at'], name='chat_task_status_458dbb_idx')],
                    },
                ),
            ],
        ),
    ]
