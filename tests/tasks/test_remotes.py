"""tasks/remotes.py: which remote and forge a project's tasks open pull requests on, and its token."""

from __future__ import annotations

import pytest

from drivers.forge import RemoteSpec, Repository
from tasks import remotes
from tests.task_helpers import git, init_repo

GH_API = "https://ghe.example.com/api/v3"


@pytest.fixture
def team(tmp_path, settings):
    repo = init_repo(tmp_path / "team")
    settings.CLAUDE_PROJECTS = {"team": repo}
    settings.CLAUDE_PROJECT_REMOTES = {}
    settings.CLAUDE_GITHUB_API_URL = GH_API
    settings.CLAUDE_GITLAB_API_URL = "https://gitlab.com/api/v4"
    return repo


def test_an_origin_whose_url_tells_the_forge_is_the_remote(team):
    assert remotes.target_for("team", team) is None  # no origin
    git(team, "remote", "add", "origin", "git@github.com:acme/widgets.git")
    target = remotes.target_for("team", team)
    assert target == remotes.Target("team", "origin", Repository("github", "acme/widgets", GH_API))
    # A changed origin is seen at once (the lookup is cached only while the configuration is unchanged).
    git(team, "remote", "set-url", "origin", "https://gitlab.com/acme/web/site.git")
    assert remotes.target_for("team", team).repository == Repository(
        "gitlab", "acme/web/site", "https://gitlab.com/api/v4"
    )
    git(team, "remote", "set-url", "origin", "https://example.org/acme/widgets.git")
    assert remotes.target_for("team", team) is None and not remotes.has_remote("team", team)


def test_a_members_own_folder_and_unknown_projects_have_none(team):
    git(team, "remote", "add", "origin", "git@github.com:acme/widgets.git")
    assert remotes.target_for("default", team) is None
    assert remotes.target_for("other", team) is None


def test_a_configured_remote_names_forge_and_path_or_reads_them_from_its_url(team, settings, tmp_path):
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("upstream", "gitlab", "acme/tools")}
    # Fully named: no need to read git (the remote is checked when pushing).
    assert remotes.target_for("team", tmp_path / "nowhere") == remotes.Target(
        "team", "upstream", Repository("gitlab", "acme/tools", "https://gitlab.com/api/v4")
    )

    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("upstream")}
    missing = remotes.target_for("team", team)
    assert missing.repository is None and "has no git remote 'upstream'" in missing.problem
    assert "git remote add upstream" in missing.problem
    git(team, "remote", "add", "upstream", "/srv/git/tools.git")
    unknown = remotes.target_for("team", team)
    assert unknown.repository is None and "does not tell its forge" in unknown.problem
    assert 'CLAUDE_PROJECT_REMOTES="team=upstream:github:OWNER/REPO"' in unknown.problem
    assert remotes.has_remote("team", team)  # offered: pressing it says what to configure

    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("upstream", "github")}
    git(team, "remote", "set-url", "upstream", "ssh://git@code.example.org/acme/tools.git")
    assert remotes.target_for("team", team).repository == Repository("github", "acme/tools", GH_API)


def test_each_project_has_its_own_token_variable(monkeypatch):
    assert remotes.token_variable("team") == "CLAUDE_FORGE_TOKEN_TEAM"
    assert remotes.token_variable("web-app.v2") == "CLAUDE_FORGE_TOKEN_WEB_APP_V2"
    monkeypatch.delenv("CLAUDE_FORGE_TOKEN_TEAM", raising=False)
    assert remotes.token_for("team") == ""
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", " secret \n")
    assert remotes.token_for("team") == "secret"
