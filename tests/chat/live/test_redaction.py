"""Hiding the server's paths on shared pages."""

from __future__ import annotations

import pytest

from chat.live.redaction import hide_paths


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
