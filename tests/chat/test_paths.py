"""Paths as pages show them: within the chat's folder, never the server's folders."""

from __future__ import annotations

import pytest

from chat.paths import hide_paths, relative_path, server_folders


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("File created successfully at: /srv/work/notes.txt", "File created successfully at: notes.txt"),
        ("cd /srv/work && ls", "cd . && ls"),
        ("ls /srv/work2/x", "ls …/x"),
        ('{"file_path": "/srv/work/sub dir/a.txt"}', '{"file_path": "sub dir/a.txt"}'),
        ("see /home/ada/.claude/projects/-srv-work/1.jsonl.", "see …/1.jsonl."),
        (
            "https://example.com/a/b and/or 1/2 </script> ~/notes",
            "https://example.com/a/b and/or 1/2 </script> ~/notes",
        ),
    ],
)
def test_hide_paths(text, shown):
    assert hide_paths(text, root="/srv/work/") == shown


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/srv/work", "."),
        ("/srv/work/", "."),
        ("/srv/work/a/b.txt", "a/b.txt"),
        ("/srv/work2/b.txt", "…/b.txt"),
        ("/srv/other", "…/other"),
        ("notes.txt", "notes.txt"),
        ("/", "/"),
    ],
)
def test_relative_path(path, shown):
    assert relative_path(path, root="/srv/work/") == shown


def test_a_members_page_cuts_only_the_servers_folders():
    text = "cat /srv/data/work/7/a.txt /srv/data/secret-key.txt /usr/bin/env /srv/data2/x"
    shown = hide_paths(text, root="/srv/data/work/7", only_under=["/srv/data"])
    assert shown == "cat a.txt …/secret-key.txt /usr/bin/env /srv/data2/x"


def test_the_servers_folders_are_the_configured_ones_and_where_they_lead(settings, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    settings.CLAUDE_PROJECTS = {"team": tmp_path / "link"}
    folders = server_folders()
    assert str(tmp_path / "link") in folders and str(tmp_path / "real") in folders
    assert str(settings.CLAUDE_WORKDIR) in folders and str(settings.DATA_DIR) in folders
