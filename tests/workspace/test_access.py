"""Who may see and who may change a workspace: its owner in their own folder, in a shared project
only those the admin lets work there, staff always; nobody else, and no share link's reader."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import ProjectAccess
from tests.factories import logged_in_client, make_session, make_user
from tests.task_helpers import init_repo

CHANGING = [
    ("upload", {"folder": ""}),
    ("new", {"folder": "", "name": "x.txt", "what": "file"}),
    ("rename", {"folder": "", "path": "README.md", "name": "y.md"}),
    ("delete", {"folder": "", "path": "README.md"}),
    ("save", {"path": "README.md", "text": "x", "mtime_ns": "1", "size": "1", "sha256": "x"}),
]


@pytest.fixture
def team_chat(db, settings, tmp_path):
    """A chat of a member in the shared project "team", which every member may read but not work in."""
    team = init_repo(tmp_path / "team")
    settings.CLAUDE_PROJECTS = {"team": team}
    settings.CLAUDE_WORKDIR = tmp_path / "work"
    ProjectAccess.objects.create(project="team", everyone=True)
    member = make_user()
    session = make_session(owner=member)
    session.project, session.workdir = "team", str(team)
    session.save()
    return member, session, team


def _url(session, name: str) -> str:
    return reverse(f"workspace:{name}", args=["chat", str(session.pk)])


def test_a_member_who_may_not_work_there_reads_but_changes_nothing(team_chat):
    member, session, team = team_chat
    client = logged_in_client(user=member)
    page = client.get(_url(session, "files")).content.decode()
    assert "README.md" in page
    assert "Upload into this folder" not in page and ">Terminal<" not in page and "Save" not in page
    for name, data in CHANGING:
        answer = client.post(_url(session, name), data)
        assert answer.status_code == 403, name
        assert "may look at this folder but not change it" in answer.content.decode()
    assert client.get(_url(session, "terminal")).status_code == 403
    assert client.post(_url(session, "changes") + "commit/", {"message": "m"}).status_code == 403
    assert (team / "README.md").exists() and not (team / "x.txt").exists()


def test_a_viewer_changes_nothing_and_gets_no_terminal_even_in_their_own_folder(db, settings, tmp_path):
    from members import roles
    from members.models import Role

    settings.CLAUDE_WORKDIR = tmp_path / "work"
    staff = make_user(is_staff=True)
    viewer = make_user()
    session = make_session(owner=viewer)
    roles.set_role(user=viewer, role=Role.VIEWER, by=staff)
    client = logged_in_client(user=viewer)
    assert ">Terminal<" not in client.get(_url(session, "files")).content.decode()
    assert client.get(_url(session, "terminal")).status_code == 403
    assert client.post(_url(session, "new"), {"folder": "", "name": "x.txt", "what": "file"}).status_code == 403


def test_may_work_lets_them_and_staff_always_may(team_chat):
    member, session, team = team_chat
    ProjectAccess.objects.filter(project="team").update(may_work=True)
    client = logged_in_client(user=member)
    assert "Upload into this folder" in client.get(_url(session, "files")).content.decode()
    client.post(_url(session, "new"), {"folder": "", "name": "x.txt", "what": "file"})
    assert (team / "x.txt").exists()
    ProjectAccess.objects.filter(project="team").update(may_work=False)
    staff = logged_in_client(user=make_user(is_staff=True))
    assert staff.get(_url(session, "terminal")).status_code == 200


def test_another_member_sees_nothing_of_a_chat(team_chat):
    _member, session, _team = team_chat
    other = logged_in_client(user=make_user())
    for name in ("files", "changes", "terminal"):
        assert other.get(_url(session, name)).status_code == 404
    assert other.post(_url(session, "new"), {"folder": "", "name": "x", "what": "file"}).status_code == 404


def test_no_login_no_workspace(team_chat):
    from django.test import Client

    _member, session, _team = team_chat
    answer = Client().get(_url(session, "files"))
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


def test_the_chat_page_links_to_its_files(db, settings, tmp_path):
    settings.CLAUDE_WORKDIR = tmp_path / "work"
    member = make_user()
    session = make_session(owner=member, workdir=init_repo(tmp_path / "work" / "own"))
    page = logged_in_client(user=member).get(session.get_absolute_url()).content.decode()
    assert _url(session, "files") in page and _url(session, "terminal") in page


def test_project_access_admin_offers_may_work(db):
    staff = logged_in_client(user=make_user(is_staff=True))
    assert "may work in its files" in staff.get(reverse("admin:chat_projectaccess_add")).content.decode().lower()


def test_git_s_own_folders_are_not_written_by_hand_even_by_who_may_work(team_chat):
    """A hand-edited .git/config of a shared project would run as the server (its git runs there)."""
    member, session, team = team_chat
    ProjectAccess.objects.filter(project="team").update(may_work=True)
    client = logged_in_client(user=member)
    config = (team / ".git" / "config").read_text()
    for name, data in [
        ("new", {"folder": ".git", "name": "hooks2", "what": "folder"}),
        ("delete", {"folder": "", "path": ".git/config"}),
        ("rename", {"folder": ".git", "path": ".git/config", "name": "config2"}),
        ("new", {"folder": ".worktrees", "name": "x", "what": "file"}),
    ]:
        answer = client.post(reverse(f"workspace:{name}", args=["chat", str(session.pk)]), data, follow=True)
        assert "is git&#x27;s: it is changed through git" in answer.content.decode(), name
    version = {"mtime_ns": "1", "size": "1", "sha256": "x"}
    saved = client.post(_url(session, "save"), {"path": ".git/config", "text": "[core]\n", **version})
    assert saved.status_code == 403
    assert (team / ".git" / "config").read_text() == config
