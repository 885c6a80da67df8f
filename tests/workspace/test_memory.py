"""Project memory's editor: a folder's CLAUDE.md opened, made on the first save, saved only over
the version the page opened; a link or a special file in its place refused and never read; who may
change it as in the rest of the workspace (a shared project: only whom the admin lets work there)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.urls import reverse

from chat.models import ProjectAccess
from tests.factories import logged_in_client, make_user
from tests.task_helpers import init_repo
from workspace.services import memory


def _form(page: str) -> dict[str, str]:
    """The editor's hidden fields as the page sent them."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    return fields


def test_the_first_save_makes_claude_md_and_the_page_shows_it_rendered(desk):
    url = desk.url("memory")
    page = desk.client.get(url).content.decode()
    assert "not there yet" in page and 'name="missing" value="1"' in page
    answer = desk.client.post(url, {**_form(page), "text": "# Rules\n\nAlways answer in **French**.\n"})
    assert answer.status_code == 302
    assert (desk.folder / "CLAUDE.md").read_text() == "# Rules\n\nAlways answer in **French**.\n"
    shown = desk.client.get(url).content.decode()
    assert "<strong>French</strong>" in shown and "<h1>Rules</h1>" in shown
    assert "when a session starts" in shown


def test_a_save_over_a_file_the_agent_changed_meanwhile_is_refused_and_offers_a_reload(desk):
    (desk.folder / "CLAUDE.md").write_text("first\n")
    url = desk.url("memory")
    page = desk.client.get(url).content.decode()
    (desk.folder / "CLAUDE.md").write_text("written by the agent\n")
    answer = desk.client.post(url, {**_form(page), "text": "mine\n"})
    assert answer.status_code == 409
    shown = answer.content.decode()
    assert "changed since you opened it" in shown and "Reload" in shown
    assert "mine" in shown and "written by the agent" in shown  # both: what I wrote and what is there now
    assert (desk.folder / "CLAUDE.md").read_text() == "written by the agent\n"
    # A new CLAUDE.md the agent made after the page found none is not overwritten either.
    (desk.folder / "CLAUDE.md").unlink()
    page = desk.client.get(url).content.decode()
    (desk.folder / "CLAUDE.md").write_text("the agent's\n")
    assert desk.client.post(url, {**_form(page), "text": "mine\n"}).status_code == 409
    assert (desk.folder / "CLAUDE.md").read_text() == "the agent's\n"


def test_a_claude_md_that_links_to_the_secret_key_is_refused_and_never_read(desk, tmp_path):
    secret = tmp_path / "secret-key.txt"
    secret.write_text("THE-SERVER-SECRET\n")
    (desk.folder / "CLAUDE.md").symlink_to(secret)
    url = desk.url("memory")
    page = desk.client.get(url).content.decode()
    assert "is a symbolic link" in page and "THE-SERVER-SECRET" not in page
    assert 'name="text"' not in page  # no editor
    answer = desk.client.post(url, {"path": "CLAUDE.md", "missing": "1", "text": "overwrite"})
    assert answer.status_code == 400 and "symbolic link" in answer.content.decode()
    assert "THE-SERVER-SECRET" not in answer.content.decode()
    version = {"mtime_ns": "1", "size": "1", "sha256": "x"}
    answer = desk.client.post(url, {"path": "CLAUDE.md", "text": "overwrite", **version})
    assert answer.status_code == 400 and "symbolic link" in answer.content.decode()
    assert secret.read_text() == "THE-SERVER-SECRET\n" and (desk.folder / "CLAUDE.md").is_symlink()


def test_a_fifo_in_its_place_is_refused_without_blocking(desk):
    os.mkfifo(desk.folder / "CLAUDE.md")
    page = desk.client.get(desk.url("memory")).content.decode()
    assert "not a regular file" in page


def test_dot_claude_memory_is_offered_when_that_is_where_it_is(desk):
    (desk.folder / ".claude").mkdir()
    (desk.folder / ".claude" / "CLAUDE.md").write_text("dot claude rules\n")
    page = desk.client.get(desk.url("memory")).content.decode()
    assert "<code>.claude/CLAUDE.md</code>" in page and "dot claude rules" in page
    answer = desk.client.post(desk.url("memory"), {**_form(page), "text": "changed\n"})
    assert answer.status_code == 302
    assert (desk.folder / ".claude" / "CLAUDE.md").read_text() == "changed\n"
    assert not (desk.folder / "CLAUDE.md").exists()
    # Another name is refused: the editor is for memory only.
    answer = desk.client.post(desk.url("memory"), {"path": "notes.md", "missing": "1", "text": "x"})
    assert answer.status_code == 400 and "Project memory is CLAUDE.md or .claude/CLAUDE.md" in answer.content.decode()


def test_memory_over_the_limit_is_refused_and_the_text_kept(desk):
    page = desk.client.get(desk.url("memory")).content.decode()
    big = "x" * (memory.LIMIT_BYTES + 1)
    answer = desk.client.post(desk.url("memory"), {**_form(page), "text": big})
    assert answer.status_code == 413 and "at most 100,000 bytes" in answer.content.decode()
    assert not (desk.folder / "CLAUDE.md").exists()


def test_the_preview_renders_markdown_safely(desk):
    answer = desk.client.post(reverse("workspace:memory-preview"), {"text": "**bold** <script>alert(1)</script>"})
    shown = answer.content.decode()
    assert "<strong>bold</strong>" in shown and "<script>" not in shown


@pytest.fixture
def team(db, settings, tmp_path) -> Path:
    """The shared project "team", open to every member; who may work there is the test's to say."""
    folder = init_repo(tmp_path / "team")
    settings.CLAUDE_PROJECTS = {"team": folder}
    settings.CLAUDE_WORKDIR = tmp_path / "work"
    ProjectAccess.objects.create(project="team", everyone=True)
    return folder


def test_a_shared_projects_memory_is_changed_only_by_whom_the_admin_lets_work_there(team):
    url = reverse("workspace:memory-project", args=["team"])
    (team / "CLAUDE.md").write_text("team rules\n")
    reader = logged_in_client(user=make_user())
    page = reader.get(url).content.decode()
    assert "team rules" in page and 'name="text"' not in page and "may read this memory" in page
    answer = reader.post(url, {"path": "CLAUDE.md", "text": "mine", "mtime_ns": "1", "size": "1", "sha256": "x"})
    assert answer.status_code == 403 and "may read this memory but not change it" in answer.content.decode()
    assert (team / "CLAUDE.md").read_text() == "team rules\n"

    ProjectAccess.objects.filter(project="team").update(may_work=True)  # Admin → Project access → may work
    page = reader.get(url).content.decode()
    assert reader.post(url, {**_form(page), "text": "new team rules\n"}).status_code == 302
    assert (team / "CLAUDE.md").read_text() == "new team rules\n"


def test_a_project_not_open_to_the_member_is_not_shown(db, settings, tmp_path):
    settings.CLAUDE_PROJECTS = {"secret": init_repo(tmp_path / "secret")}
    client = logged_in_client(user=make_user())
    url = reverse("workspace:memory-project", args=["secret"])
    assert client.get(url).status_code == 404
    assert client.post(url, {"path": "CLAUDE.md", "missing": "1", "text": "x"}).status_code == 404
    settings_page = client.get(reverse("chat:settings")).content.decode()
    assert "Project memory" in settings_page and "/project/secret/" not in settings_page


def test_settings_and_the_new_chat_page_list_the_own_folder_and_the_shared_projects(team):
    user = make_user()  # whose own folder is made when its memory is opened, before any chat
    client = logged_in_client(user=user)
    page = client.get(reverse("chat:settings")).content.decode()
    assert reverse("workspace:memory-project", args=["default"]) in page
    assert reverse("workspace:memory-project", args=["team"]) in page
    own = reverse("workspace:memory-project", args=["default"])
    # The New chat page's project picker names each folder's memory too.
    new_chat = client.get(reverse("chat:new")).content.decode()
    assert own in new_chat and reverse("workspace:memory-project", args=["team"]) in new_chat
    form = client.get(own).content.decode()
    assert client.post(own, {**_form(form), "text": "mine\n"}).status_code == 302
    assert (Path(team).parent / "work" / str(user.pk) / "CLAUDE.md").read_text() == "mine\n"


def test_a_viewer_reads_memory_and_changes_nothing(desk):
    from members import roles
    from members.models import Role

    roles.set_role(user=desk.user, role=Role.VIEWER, by=make_user(is_staff=True))
    (desk.folder / "CLAUDE.md").write_text("rules\n")
    page = desk.client.get(desk.url("memory")).content.decode()
    assert "rules" in page and 'name="text"' not in page
    answer = desk.client.post(desk.url("memory"), {"path": "CLAUDE.md", "missing": "1", "text": "x"})
    assert answer.status_code == 403
