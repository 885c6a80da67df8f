"""The models and their migrations agree, so `migrate` on a fresh machine builds the real schema."""

from pathlib import Path

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_existing_chats_get_a_config_folder_of_their_own_and_keep_their_transcript(settings, tmp_path):
    """Before, every chat's transcript lived in one shared CLI folder; the migration moves each into
    its chat's own folder, where the chat's agent (and only it) finds it on resume."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from drivers.claude import transcript_path

    settings.CLAUDE_CONFIG_DIR = tmp_path / "claude"
    before, after = (
        [("chat", "0002_task_moved_to_tasks_app")],
        [("chat", "0003_per_chat_config_folders_and_project_access")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    User = old_apps.get_model("auth", "User")
    Session = old_apps.get_model("chat", "Session")
    owner = User.objects.create(username="legacy")
    workdir = tmp_path / "work"
    workdir.mkdir()
    session = Session.objects.create(owner=owner, workdir=str(workdir))
    shared = tmp_path / "shared-claude"
    old = transcript_path(shared, workdir, str(session.id))
    old.parent.mkdir(parents=True)
    old.write_text('{"type": "user"}\n')
    (old.with_suffix("") / "subagents").mkdir(parents=True)
    Session.objects.filter(pk=session.pk).update(transcript_path=str(old))

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new_apps = executor.loader.project_state(after).apps
    moved = new_apps.get_model("chat", "Session").objects.get(pk=session.pk)
    folder = tmp_path / "claude" / str(owner.pk) / str(session.id)
    assert moved.config_dir == str(folder)
    assert moved.transcript_path == str(transcript_path(folder, workdir, str(session.id)))
    assert Path(moved.transcript_path).read_text() == '{"type": "user"}\n'
    assert (Path(moved.transcript_path).with_suffix("") / "subagents").is_dir()
    assert not old.exists()
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
