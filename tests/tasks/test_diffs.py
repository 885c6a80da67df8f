"""A task's patch per file, as its page shows it."""

from __future__ import annotations

from chat.toolcards import Line
from tasks.diffs import FILE_PREVIEW_LINES, parse_patch

PATCH = """\
 a.txt      | 2 +-
 new.txt    | 1 +
 2 files changed, 2 insertions(+), 1 deletion(-)

diff --git a/a.txt b/a.txt
index 1111111..2222222 100644
--- a/a.txt
+++ b/a.txt
@@ -1,2 +1,2 @@
 same
-old line
+new line
diff --git a/new.txt b/new.txt
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/new.txt
@@ -0,0 +1 @@
+hello
\\ No newline at end of file
diff --git a/old name.txt b/new name.txt
similarity index 100%
rename from old name.txt
rename to new name.txt
diff --git a/logo.png b/logo.png
new file mode 100644
Binary files /dev/null and b/logo.png differ

(and not yet committed: notes.txt)
"""


def test_a_patch_is_split_per_file_with_its_lines_and_counts():
    patch = parse_patch(PATCH)
    assert [(f.path, f.status) for f in patch.files] == [
        ("a.txt", "modified"),
        ("new.txt", "added"),
        ("new name.txt", "renamed"),
        ("logo.png", "added"),
    ]
    first = patch.files[0]
    assert first.lines.shown == [
        Line("hunk", "@@ -1,2 +1,2 @@"),
        Line("ctx", " same"),
        Line("del", "-old line"),
        Line("add", "+new line"),
    ]
    assert (first.added, first.removed) == (1, 1)
    assert patch.files[1].lines.shown[-1] == Line("meta", "\\ No newline at end of file")
    assert patch.files[2].old_path == "old name.txt" and patch.files[2].lines.count == 0
    assert patch.files[3].lines.shown == [Line("meta", "Binary file: not shown")]
    assert (patch.added, patch.removed) == (2, 1)
    assert patch.notes == ["(and not yet committed: notes.txt)"]


def test_a_cut_patch_says_so_and_a_long_file_folds():
    body = "\n".join(f"+line {i}" for i in range(FILE_PREVIEW_LINES + 50))
    patch = parse_patch(f"diff --git a/big b/big\n--- a/big\n+++ b/big\n@@ -0,0 +1 @@\n{body}\n… (diff cut)\n")
    lines = patch.files[0].lines
    assert len(lines.shown) == FILE_PREVIEW_LINES and lines.count == FILE_PREVIEW_LINES + 51
    assert patch.notes == ["… (diff cut)"]


def test_nothing_is_no_files():
    assert parse_patch("").files == [] and parse_patch("").notes == []


REVIEWED = """\
diff --git a/r.txt b/r.txt
--- a/r.txt
+++ b/r.txt
@@ -3,4 +3,5 @@
 three
-four
+FOUR
 five
+inserted
 six
"""


def test_lines_carry_their_numbers_on_both_sides_and_pair_up_side_by_side():
    (file,) = parse_patch(REVIEWED).files
    numbered = [(row.kind, row.old, row.new, row.body) for row in file.rows[1:]]
    assert numbered == [
        ("ctx", 3, 3, "three"),
        ("del", 4, None, "four"),
        ("add", None, 4, "FOUR"),
        ("ctx", 5, 5, "five"),
        ("add", None, 6, "inserted"),
        ("ctx", 6, 7, "six"),
    ]
    pairs = file.pairs()
    assert pairs[0].kind == "hunk"
    assert (pairs[2].left.body, pairs[2].right.body) == ("four", "FOUR")  # a removed line faces its replacement
    assert (pairs[4].left, pairs[4].right.body) == (None, "inserted")
    assert file.row_at("new", 6).body == "inserted" and file.row_at("old", 4).body == "four"
    assert file.row_at("new", 40) is None and not file.large


def test_the_old_lines_a_change_touches():
    (file,) = parse_patch(REVIEWED).files
    # "four" was replaced; "inserted" went between five and six, touching both; three was left alone.
    assert file.changed_old_lines() == {4, 5, 6}
