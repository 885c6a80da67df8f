"""Settings of pull requests: a malformed value stops the start with the variable's name and what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from drivers import forge
from drivers.forge import RemoteSpec
from project.settings import envparsed, envremotes

PROJECTS = {"api": Path("/srv/api"), "web": Path("/srv/web")}


def test_project_remotes_are_read(monkeypatch):
    monkeypatch.setenv("CLAUDE_PROJECT_REMOTES", "api=origin:github:acme/api, web=upstream")
    assert envremotes("CLAUDE_PROJECT_REMOTES", PROJECTS) == {
        "api": RemoteSpec("origin", "github", "acme/api"), "web": RemoteSpec("upstream")}
    monkeypatch.delenv("CLAUDE_PROJECT_REMOTES")
    assert envremotes("CLAUDE_PROJECT_REMOTES", PROJECTS) == {}


@pytest.mark.parametrize(("value", "says"), [
    ("api=origin:github:acme", "CLAUDE_PROJECT_REMOTES: api: 'acme' is not a GitHub repository path"),
    ("api", "CLAUDE_PROJECT_REMOTES: 'api' is not KEY=REMOTE"),
    ("docs=origin", "CLAUDE_PROJECT_REMOTES: docs is not among CLAUDE_PROJECTS"),
    ("default=origin", "CLAUDE_PROJECT_REMOTES: default is not among CLAUDE_PROJECTS"),
])
def test_malformed_project_remotes_stop_the_start(monkeypatch, value, says):
    monkeypatch.setenv("CLAUDE_PROJECT_REMOTES", value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(says)):
        envremotes("CLAUDE_PROJECT_REMOTES", PROJECTS)


def test_a_malformed_api_url_stops_the_start(monkeypatch):
    monkeypatch.setenv("CLAUDE_GITLAB_API_URL", "git.example.com/api/v4")
    with pytest.raises(ImproperlyConfigured, match=re.escape("CLAUDE_GITLAB_API_URL: 'git.example.com/api/v4' is not an http")):
        envparsed("CLAUDE_GITLAB_API_URL", forge.GITLAB_API, forge.parse_api_url)
    monkeypatch.delenv("CLAUDE_GITLAB_API_URL")
    assert envparsed("CLAUDE_GITLAB_API_URL", forge.GITLAB_API, forge.parse_api_url) == "https://gitlab.com/api/v4"
