"""Tool calls and results as cards: an edit as a diff, a command and its output, a read's line
count, a checklist, a search's hits; long parts folded away."""

from __future__ import annotations

from chat.paths import PathView
from chat.toolcards import PREVIEW_LINES, Line, diff_lines, result_card, tool_card


def kinds(lines: list[Line]) -> list[tuple[str, str]]:
    return [(line.kind, line.text) for line in lines]


def test_an_edit_is_a_diff_with_context_removed_and_added_lines():
    card = tool_card(
        "Edit", {"file_path": "/w/app.py", "old_string": "a = 1\nb = 2\nc = 3", "new_string": "a = 1\nb = 20\nc = 3"}
    )
    assert card.kind == "edit" and card.subject == "/w/app.py"
    assert card.lines is not None and kinds(card.lines.shown) == [
        ("ctx", "a = 1"),
        ("del", "b = 2"),
        ("add", "b = 20"),
        ("ctx", "c = 3"),
    ]
    assert (card.added, card.removed) == (1, 1)


def test_a_multi_edit_shows_each_edit_apart():
    card = tool_card(
        "MultiEdit",
        {
            "file_path": "x.py",
            "edits": [{"old_string": "one", "new_string": "uno"}, {"old_string": "two", "new_string": ""}],
        },
    )
    assert card.lines is not None
    assert kinds(card.lines.shown) == [("del", "one"), ("add", "uno"), ("hunk", "⋯"), ("del", "two")]
    assert (card.added, card.removed) == (1, 2)


def test_a_write_is_all_added_lines_and_a_long_one_folds():
    content = "\n".join(f"line {i}" for i in range(100))
    card = tool_card("Write", {"file_path": "big.txt", "content": content})
    assert card.lines is not None
    assert card.added == 100 and card.removed == 0
    assert len(card.lines.shown) == PREVIEW_LINES and len(card.lines.more) == 100 - PREVIEW_LINES
    assert card.lines.count == 100 and card.lines.more[-1] == Line("add", "line 99")


def test_a_few_lines_over_the_preview_are_not_folded():
    card = tool_card("Write", {"file_path": "f", "content": "\n".join("x" * (PREVIEW_LINES + 2))})
    assert card.lines is not None and not card.lines.more


def test_bash_is_its_command_and_its_output():
    card = tool_card("Bash", {"command": "ls -la", "description": "List files"})
    assert (card.kind, card.subject, card.detail) == ("bash", "ls -la", "List files")
    result = result_card("Bash", "a\nb\n")
    assert result.summary == "Output" and not result.fold_all
    assert kinds(result.lines.shown) == [("out", "a"), ("out", "b")]
    assert result_card("Bash", "").summary == "No output"


def test_read_is_its_path_and_a_line_count():
    card = tool_card("Read", {"file_path": "/w/README.md", "offset": 10, "limit": 5})
    assert (card.kind, card.subject, card.detail) == ("read", "/w/README.md", "from line 10, 5 lines")
    result = result_card(
        "Read", "     1→# Title\n     2→\n     3→Text\n     4→\n\n<system-reminder>x</system-reminder>"
    )
    assert result.summary == "3 lines" and result.fold_all  # not the empty one after the last newline


def test_todo_write_is_a_checklist():
    card = tool_card(
        "TodoWrite",
        {
            "todos": [
                {"content": "Write tests", "status": "completed", "activeForm": "x"},
                {"content": "Ship", "status": "in_progress"},
                {"content": "Rest"},
            ]
        },
    )
    assert card.kind == "todo"
    assert [(t.text, t.status) for t in card.todos] == [
        ("Write tests", "completed"),
        ("Ship", "in_progress"),
        ("Rest", "pending"),
    ]


def test_a_search_is_its_pattern_and_its_hit_count():
    card = tool_card("Grep", {"pattern": "def \\w+", "path": "/w/src", "glob": "*.py"})
    assert (card.kind, card.subject, card.detail) == ("search", "def \\w+", "/w/src *.py")
    assert result_card("Grep", "Found 2 files\n/w/a.py\n/w/b.py").summary == "2 files"
    assert kinds(result_card("Grep", "Found 2 files\n/w/a.py\n/w/b.py").lines.shown) == [
        ("out", "/w/a.py"),
        ("out", "/w/b.py"),
    ]
    assert result_card("Grep", "a.py:1:x\nb.py:2:y").summary == "2 hits"
    assert result_card("Glob", "/w/a.py\n/w/b.py\n/w/c.py").summary == "3 hits"
    assert result_card("Glob", "No files found").summary == "No hits"


def test_an_error_says_so_with_its_first_line():
    result = result_card("Bash", "Exit code 2\nls: cannot access", is_error=True)
    assert result.summary == "Tool error: Exit code 2" and not result.fold_all


def test_other_tools_show_their_input_as_json():
    card = tool_card("WebFetch", {"url": "https://example.com"})
    assert card.kind == "other" and '"url": "https://example.com"' in card.raw


def test_a_share_page_hides_every_absolute_path_in_cards():
    shared = PathView(root="/srv/w", shared=True)
    card = tool_card(
        "Edit", {"file_path": "/srv/w/app.py", "old_string": "open('/etc/x')", "new_string": "y"}, paths=shared
    )
    assert card.subject == "app.py" and card.lines is not None and card.lines.shown[0].text == "open('…/x')"
    assert tool_card("Bash", {"command": "cat /srv/w/a /root/k"}, paths=shared).subject == "cat a …/k"
    assert result_card("Bash", "/srv/w/a: ok", paths=shared).lines.shown[0].text == "a: ok"


def test_a_members_cards_show_paths_within_the_chat_and_none_of_the_servers_folders(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.CLAUDE_WORKDIR = tmp_path / "data" / "workdir"
    own = PathView(root=f"{tmp_path}/data/workdir/7")
    card = tool_card(
        "Write", {"file_path": f"{tmp_path}/data/workdir/7/notes.txt", "content": "#!/usr/bin/env python"}, paths=own
    )
    assert (
        card.subject == "notes.txt" and card.lines is not None and card.lines.shown[0].text == "#!/usr/bin/env python"
    )
    command = tool_card("Bash", {"command": f"ls {tmp_path}/data/workdir/8 /usr/lib"}, paths=own).subject
    assert command == "ls …/8 /usr/lib"
    search = tool_card("Glob", {"pattern": "*.py", "path": f"{tmp_path}/data/workdir/7/src"}, paths=own)
    assert search.detail == "src"
    found = result_card("Glob", f"{tmp_path}/data/workdir/7/src/a.py\n{tmp_path}/data/secret-key.txt", paths=own)
    assert [line.text for line in found.lines.shown] == ["src/a.py", "…/secret-key.txt"]


def test_diff_lines_of_nothing_changed_is_all_context():
    assert kinds(diff_lines("a\nb", "a\nb")) == [("ctx", "a"), ("ctx", "b")]


def test_an_mcp_tool_is_named_with_its_server() -> None:
    card = tool_card("mcp__docs-search__find", {"text": "bubblewrap"})
    assert (card.tool, card.kind, card.detail) == ("find", "mcp", "MCP server docs-search")
    assert '"text": "bubblewrap"' in card.raw
