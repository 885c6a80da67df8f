"""The Files of a chat through the test client, with the real sandbox running git: the tree, a file,
downloads, uploads, edits, and what is refused."""

from __future__ import annotations

import html
import io
import os
import zipfile

import pytest

from tests.task_helpers import git


def _folded(html: str) -> str:
    """The part of the page that lists the folded entries (.git and what git ignores)."""
    return html.split('class="ws-ignored"', 1)[1] if 'class="ws-ignored"' in html else ""


def test_tree_folds_git_and_ignored_entries(desk):
    (desk.folder / ".gitignore").write_text("build/\n*.log\n")
    (desk.folder / "build").mkdir()
    (desk.folder / "debug.log").write_text("noise\n")
    (desk.folder / "notes.txt").write_text("hello\n")

    page = desk.client.get(desk.url()).content.decode()

    shown, folded = page.split('class="ws-ignored"', 1)
    assert "notes.txt" in shown and "README.md" in shown
    assert "debug.log" not in shown and ">build/<" not in shown
    assert ".git/" in folded and "build/" in folded and "debug.log" in folded
    assert "3 folded" in page


def test_a_level_is_capped_and_says_how_many_more(desk):
    many = desk.folder / "many"
    many.mkdir()
    for n in range(520):
        (many / f"f{n:04d}.txt").write_text("")
    level = desk.client.get(desk.url("tree", path="many")).content.decode()
    assert "f0000.txt" in level and "f0499.txt" in level and "f0500.txt" not in level
    assert "20 more not shown" in level


def test_a_file_opens_highlighted_and_markdown_rendered(desk):
    (desk.folder / "app.py").write_text("def hello():\n    return '<b>'\n")
    (desk.folder / "doc.md").write_text("# Title\n\n<script>alert(1)</script>\n")
    code = desk.client.get(desk.url(open="app.py")).content.decode()
    assert '<span class="k">def</span>' in code and "&lt;b&gt;" in code
    doc = desk.client.get(desk.url(open="doc.md")).content.decode()
    assert "<h1>Title</h1>" in doc and "<script>alert(1)</script>" not in doc


def test_a_link_to_the_secret_key_is_shown_never_read(desk, tmp_path):
    secret = tmp_path / "secret-key.txt"
    secret.write_text("THE-SERVER-SECRET\n")
    (desk.folder / "key").symlink_to(secret)
    (desk.folder / "sub").mkdir()
    (desk.folder / "sub" / "key").symlink_to(secret)

    page = desk.client.get(desk.url()).content.decode()
    assert "key" in page and str(secret) in page  # the link's own text, as a link
    opened = desk.client.get(desk.url(open="key")).content.decode()
    assert "A symbolic link to" in opened and "THE-SERVER-SECRET" not in opened

    download = desk.client.get(desk.url("download", path="key"))
    assert download.status_code == 400
    assert "symbolic link" in download.content.decode() and "THE-SERVER-SECRET" not in download.content.decode()
    through = desk.client.get(desk.url("download", path="sub/key"))
    assert through.status_code == 400

    zipped = desk.client.get(desk.url("zip"))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert "README.md" in archive.namelist()
    assert "key" not in archive.namelist() and "sub/key" not in archive.namelist()
    assert all(b"THE-SERVER-SECRET" not in archive.read(name) for name in archive.namelist())


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("../escape.txt", "holds a '/'"),
        ("..", "is not a name"),
        ("bad\x01name", "control character"),
        ("x" * 256, "at most 255"),
    ],
)
def test_bad_names_are_refused_with_a_reason(desk, name, said):
    answer = desk.client.post(desk.url("new"), {"folder": "", "name": name, "what": "file"}, follow=True)
    assert said in html.unescape(answer.content.decode())
    assert sorted(p.name for p in desk.folder.iterdir()) == [".git", "README.md", "shared.txt"]


def test_a_path_climbing_out_is_refused(desk):
    answer = desk.client.get(desk.url("download", path="../../etc/passwd"))
    assert answer.status_code == 400 and "climb out" in html.unescape(answer.content.decode())


def test_upload_saves_and_one_over_the_limit_is_refused(desk, settings):
    settings.CLAUDE_WORKSPACE_UPLOAD_MB = 0.001  # about 1 KB
    small = io.BytesIO(b"tiny")
    small.name = "tiny.txt"
    desk.client.post(desk.url("upload"), {"folder": "", "files": small})
    assert (desk.folder / "tiny.txt").read_bytes() == b"tiny"

    big = io.BytesIO(b"x" * 5000)
    big.name = "big.bin"
    answer = desk.client.post(desk.url("upload"), {"folder": "", "files": big}, follow=True)
    assert "big.bin is larger than uploads may be (0.001 MB" in html.unescape(answer.content.decode())
    assert not (desk.folder / "big.bin").exists()


def test_new_rename_delete(desk):
    desk.client.post(desk.url("new"), {"folder": "", "name": "docs", "what": "folder"})
    desk.client.post(desk.url("new"), {"folder": "docs", "name": "a.txt", "what": "file"})
    assert (desk.folder / "docs" / "a.txt").is_file()
    desk.client.post(desk.url("rename"), {"folder": "docs", "path": "docs/a.txt", "name": "b.txt"})
    assert (desk.folder / "docs" / "b.txt").is_file()
    taken = desk.client.post(desk.url("rename"), {"folder": "", "path": "README.md", "name": "shared.txt"}, follow=True)
    assert "exists already" in html.unescape(taken.content.decode())
    desk.client.post(desk.url("delete"), {"folder": "", "path": "docs"})
    assert not (desk.folder / "docs").exists()


def _version(desk, path: str) -> dict[str, str]:
    page = desk.client.get(desk.url(open=path)).content.decode()
    found = {}
    for field in ("mtime_ns", "size", "sha256"):
        found[field] = page.split(f'name="{field}" value="', 1)[1].split('"', 1)[0]
    return found


def test_an_edit_of_a_file_changed_since_it_was_opened_is_refused_then_saved(desk):
    version = _version(desk, "shared.txt")
    (desk.folder / "shared.txt").write_text("the agent's version\n")

    refused = desk.client.post(desk.url("save"), {"path": "shared.txt", "text": "mine\n", **version})
    assert refused.status_code == 409
    page = refused.content.decode()
    page = html.unescape(page)
    assert "changed since you opened it" in page and "the agent's version" in page and "mine" in page
    assert (desk.folder / "shared.txt").read_text() == "the agent's version\n"

    fresh = _version(desk, "shared.txt")
    saved = desk.client.post(desk.url("save"), {"path": "shared.txt", "text": "mine\r\n", **fresh}, follow=True)
    assert "Saved shared.txt" in saved.content.decode()
    assert (desk.folder / "shared.txt").read_text() == "mine\n"


def test_a_commit_from_changes_appears_in_the_log(desk):
    (desk.folder / "shared.txt").write_text("changed\n")
    (desk.folder / "new.txt").write_text("new\n")
    page = desk.client.get(desk.url("changes")).content.decode()
    assert "shared.txt" in page and "new, not tracked" in page
    diff = desk.client.get(desk.url("changes", diff="shared.txt")).content.decode()
    assert "+changed" in diff and "-original" in diff

    desk.client.post(desk.url("changes") + "stage/", {"path": "shared.txt"})
    desk.client.post(desk.url("changes") + "stage/", {"path": "new.txt"})
    done = desk.client.post(desk.url("changes") + "commit/", {"message": "Say it changed"}, follow=True)
    page = done.content.decode()
    assert "Committed" in page and "Say it changed" in page
    assert "Nothing changed since the last commit" in page
    assert git(desk.folder, "log", "-1", "--format=%s %an").strip() == f"Say it changed {desk.user.username}"


def test_discard_restores_a_committed_file_and_removes_a_new_one_staged_or_not(desk):
    (desk.folder / "shared.txt").write_text("changed\n")
    (desk.folder / "staged.txt").write_text("new\n")
    (desk.folder / "loose.txt").write_text("new\n")
    desk.client.post(desk.url("changes") + "stage/", {"path": "staged.txt"})
    for path in ("shared.txt", "staged.txt", "loose.txt"):
        done = desk.client.post(desk.url("changes") + "discard/", {"path": path}, follow=True)
        assert f"Discarded the changes of {path}." in done.content.decode()
    assert (desk.folder / "shared.txt").read_text() == "original\n"
    assert not (desk.folder / "staged.txt").exists() and not (desk.folder / "loose.txt").exists()
    assert "Nothing changed since the last commit" in done.content.decode()


def test_a_filter_the_agent_planted_in_git_runs_in_the_sandbox_not_as_the_server(desk, tmp_path):
    """The member's own .git is theirs (their agents write it): Changes runs git there in the sandbox."""
    marker = tmp_path / "ran-as-the-server"
    with (desk.folder / ".git" / "config").open("a") as config:
        config.write(f'[filter "planted"]\n\tclean = touch {marker} && cat\n')
    (desk.folder / ".gitattributes").write_text("*.txt filter=planted\n")
    (desk.folder / "shared.txt").write_text("changed\n")
    desk.client.post(desk.url("changes") + "stage/", {"path": "shared.txt"})
    assert "staged: modified" in desk.client.get(desk.url("changes")).content.decode()
    assert not marker.exists()  # it ran where the server's folders are not


def test_saving_unchanged_text_as_a_browser_sends_it_keeps_the_file_as_it_was(desk):
    """A text box drops a first line break after its tag and sends CRLF line ends: neither reaches the file."""
    original = b"\r\nfirst line after an empty one\r\nsecond\r\n"
    (desk.folder / "dos.txt").write_bytes(original)
    page = desk.client.get(desk.url(open="dos.txt")).content.decode()
    shown = html.unescape(page.split('aria-label="Text of dos.txt">', 1)[1].split("</textarea>", 1)[0])
    as_sent = shown.removeprefix("\n").replace("\r\n", "\n").replace("\n", "\r\n")  # what a browser does
    desk.client.post(desk.url("save"), {"path": "dos.txt", "text": as_sent, **_version(desk, "dos.txt")})
    assert (desk.folder / "dos.txt").read_bytes() == original


def test_a_folder_named_beyond_ascii_with_quotes_downloads_as_a_zip(desk):
    folder = desk.folder / 'Ünïcode "quoted"'
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    answer = desk.client.get(desk.url("zip", path=folder.name))
    assert answer.status_code == 200 and "filename*=utf-8''" in answer["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content)))
    assert archive.read("a.txt") == b"a\n"


def test_names_and_link_targets_that_are_not_utf8_are_shown_not_fatal(desk):
    (desk.folder / os.fsdecode(b"bad\xff.txt")).write_text("x")
    os.symlink(b"/tmp/\xfe", os.fsencode(desk.folder / "odd-link"))
    page = desk.client.get(desk.url())
    assert page.status_code == 200
    text = page.content.decode()
    assert "bad\ufffd.txt" in text and "name not UTF-8" in text and "/tmp/\ufffd" in text
