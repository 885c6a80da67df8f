# MCP servers per project (an admin's), and a chat's own switches and what the CLI reported of them.
# The chat's two fields are nullable with no default: added with ALTER TABLE on SQLite too, never
# rebuilding chat_session (the search index's triggers name it).

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0020_session_todos'),
    ]

    operations = [
        migrations.AddField(
            model_name='session',
            name='mcp_off',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='session',
            name='mcp_seen',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='McpServer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('project', models.CharField(help_text='A key of CLAUDE_PROJECTS, or "default" for every member\'s own folder.', max_length=64)),
                ('name', models.CharField(help_text='The model sees its tools as mcp__<name>__<tool>.', max_length=40, validators=[django.core.validators.RegexValidator('^[a-z0-9_-]{1,40}$', 'Lower-case letters, digits, _ and - only (at most 40).')])),
                ('kind', models.CharField(choices=[('stdio', "stdio (a program in the agent's sandbox)"), ('http', 'HTTP (a URL, through the egress proxy)')], default='stdio', max_length=8)),
                ('command', models.CharField(blank=True, help_text='stdio: the program, as the sandbox sees it (e.g. /usr/bin/python3).', max_length=1024)),
                ('args', models.JSONField(blank=True, default=list, help_text='stdio: its arguments, a JSON list of strings.')),
                ('env', models.JSONField(blank=True, default=dict, help_text='stdio: variables it gets, a JSON object of literal strings. The agent can read them: no secrets.')),
                ('url', models.URLField(blank=True, help_text="http: the server's URL; agents reach it through the egress proxy, never directly.", max_length=2048)),
                ('secret_env', models.CharField(blank=True, help_text="http: the NAME of a variable of the server's environment whose value the egress proxy sends as Authorization: Bearer <value>. No agent and no member sees the value.", max_length=100, verbose_name="secret's variable")),
                ('enabled', models.BooleanField(default=True)),
            ],
            options={
                'verbose_name': 'MCP server',
                'ordering': ['project', 'name'],
                'constraints': [models.UniqueConstraint(fields=('project', 'name'), name='mcp_server_unique_name')],
            },
        ),
    ]
