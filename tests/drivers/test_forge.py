"""drivers/forge/ (remotes.py, api.py): the configuration it reads, git URLs, and its REST calls against the local
stand-in for GitHub and GitLab (tests/forge_standin.py), backed by real bare repositories."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from drivers import forge as f
from drivers.forge import api as forge_api
from tests.forge_standin import widgets_with_feature
from tests.task_helpers import init_repo

GH, GL = "https://api.github.com", "https://gitlab.com/api/v4"

# ---------------------------------------------------------------------------------------
# Configuration


def test_remotes_are_read_with_what_each_names():
    assert f.parse_remotes(
        " api = origin:github:acme/api.git , web=upstream:gitlab:acme/web/site,docs=origin,x=fork:gitlab"
    ) == {
        "api": f.RemoteSpec("origin", "github", "acme/api"),
        "web": f.RemoteSpec("upstream", "gitlab", "acme/web/site"),
        "docs": f.RemoteSpec("origin"),
        "x": f.RemoteSpec("fork", "gitlab"),
    }
    assert f.parse_remotes("") == {}
    assert f.parse_remotes("a=o:gitlab:my.group/sub-group/app.v2")["a"].path == "my.group/sub-group/app.v2"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("api", "is not KEY=REMOTE[:FORGE[:PATH]]"),
        ("api=", "is not KEY=REMOTE"),
        ("a b=origin", "may only hold"),
        ("a=origin,a=origin", "given twice"),
        ("a=-x", "is not a git remote's name"),
        ("a=origin:bitbucket:x/y", "github or gitlab"),
        ("a=origin:github:acme", "is not a GitHub repository path (OWNER/REPO)"),
        ("a=origin:github:acme/api/extra", "is not a GitHub repository path"),
        ("a=origin:gitlab:solo", "GROUP[/SUBGROUP...]/PROJECT"),
        ("a=origin:gitlab:acme/../x", "is not a GitLab"),
    ],
)
def test_malformed_remotes_say_what_is_wrong(value, says):
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        f.parse_remotes(value)


@pytest.mark.parametrize("value", ["", "api.github.com", "ftp://x", "https://x/api?y=1", "file:///tmp/x"])
def test_an_api_url_must_be_http(value):
    with pytest.raises(ValueError, match="is not an http"):
        f.parse_api_url(value)


def test_api_urls_lose_their_trailing_slash():
    assert f.parse_api_url(" https://git.example.com/api/v4/ ") == "https://git.example.com/api/v4"


GHE, OWN_GITLAB = "https://ghe.example.com/api/v3", "https://git.example.com/api/v4"


@pytest.mark.parametrize(
    ("url", "apis", "expected"),
    [
        ("https://github.com/acme/widgets.git", (GH, GL), ("github", "acme/widgets", GH)),
        ("https://user:secret@github.com/acme/widgets", (GH, GL), ("github", "acme/widgets", GH)),
        ("git@github.com:acme/widgets.git", (GH, GL), ("github", "acme/widgets", GH)),
        ("ssh://git@github.com:22/acme/widgets.git", (GH, GL), ("github", "acme/widgets", GH)),
        ("https://gitlab.com/acme/web/site.git", (GH, GL), ("gitlab", "acme/web/site", GL)),
        ("git@gitlab.com:acme/site.git", (GH, GL), ("gitlab", "acme/site", GL)),
        # The hosts of configured API URLs: a GitHub Enterprise server, a self-hosted GitLab.
        ("https://ghe.example.com/acme/widgets.git", (GHE, OWN_GITLAB), ("github", "acme/widgets", GHE)),
        ("git@git.example.com:team/app.git", (GHE, OWN_GITLAB), ("gitlab", "team/app", OWN_GITLAB)),
    ],
)
def test_a_remote_url_tells_its_forge_and_repository(url, apis, expected):
    found = f.repository_from_url(url, forge=None, github_api=apis[0], gitlab_api=apis[1])
    assert found is not None and (found.forge, found.path, found.api) == expected


@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/widgets.git",
        "file:///srv/git/widgets.git",
        "https://example.org/acme/widgets.git",
        "https://github.com/acme",
        "../widgets.git",
    ],
)
def test_a_url_that_tells_no_forge_gives_none(url):
    assert f.repository_from_url(url, forge=None, github_api=GH, gitlab_api=GL) is None


def test_a_named_forge_reads_only_the_path_from_the_url():
    found = f.repository_from_url(
        "ssh://git@code.example.org/acme/app.git", forge="gitlab", github_api=GH, gitlab_api=GL
    )
    assert found == f.Repository("gitlab", "acme/app", GL)


def test_the_token_goes_to_the_forges_own_host_only():
    assert f.Repository("github", "a/b", GH).web == "https://github.com/"
    assert f.Repository("github", "a/b", "https://ghe.example.com/api/v3").web == "https://ghe.example.com/"
    assert f.Repository("gitlab", "a/b", "https://example.org/gitlab/api/v4").web == "https://example.org/gitlab/"
    config = f.git_auth_config(f.Repository("gitlab", "a/b", GL), "tok")
    assert config == {"http.https://gitlab.com/.extraHeader": "Authorization: Basic b2F1dGgyOnRvaw=="}  # oauth2:tok


# ---------------------------------------------------------------------------------------
# REST calls against the stand-in


@pytest.fixture
def widgets(tmp_path, forge):
    """acme/widgets on both stand-in forges, with a pushed branch "feature" besides main."""
    return widgets_with_feature(tmp_path, forge)


def test_github_pull_request_open_read_close_as_documented(widgets, forge):
    repo = widgets["github"]
    opened = f.open_pull_request(repo, forge.token, head="feature", base="main", title="Add f", body="Why", timeout=5)
    assert opened == f.Opened(f.PullRequest(1, "https://github.com/acme/widgets/pull/1", f.State.OPEN), existed=False)
    (post,) = forge.calls("POST")
    assert post.path == "/github/repos/acme/widgets/pulls"
    assert post.headers["authorization"] == f"Bearer {forge.token}"
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    assert post.headers["content-type"] == "application/json"
    assert post.json == {"title": "Add f", "head": "feature", "base": "main", "body": "Why"}

    assert f.get_pull_request(repo, forge.token, 1, timeout=5).state == f.State.OPEN
    forge.merge("github", "acme/widgets", 1)
    assert f.get_pull_request(repo, forge.token, 1, timeout=5).state == f.State.MERGED
    assert [(r.method, r.path) for r in forge.requests][-1] == ("GET", "/github/repos/acme/widgets/pulls/1")

    again = f.open_pull_request(repo, forge.token, head="feature", base="main", title="Add f", body="", timeout=5)
    assert again.pull_request.number == 2 and not again.existed  # the first one is merged: a new one
    closed = f.close_pull_request(repo, forge.token, 2, timeout=5)
    assert closed.state == f.State.CLOSED
    patch = forge.calls("PATCH")[-1]
    assert patch.path == "/github/repos/acme/widgets/pulls/2" and patch.json == {"state": "closed"}


def test_github_422_for_an_open_one_answers_that_one(widgets, forge):
    repo = widgets["github"]
    first = f.open_pull_request(repo, forge.token, head="feature", base="main", title="t", body="b", timeout=5)
    second = f.open_pull_request(repo, forge.token, head="feature", base="main", title="t", body="b", timeout=5)
    assert second == f.Opened(first.pull_request, existed=True)
    lookup = forge.calls("GET")[-1]
    assert lookup.path == "/github/repos/acme/widgets/pulls"
    assert lookup.query == {"head": ["acme:feature"], "base": ["main"], "state": ["open"]}


def test_github_422_for_another_reason_is_said(widgets, forge):
    with pytest.raises(f.Refused, match=r"GitHub answered 422 \(Validation Failed: base invalid\)"):
        f.open_pull_request(widgets["github"], forge.token, head="feature", base="nope", title="t", body="", timeout=5)


def test_gitlab_merge_request_open_read_close_as_documented(widgets, forge):
    repo = widgets["gitlab"]
    opened = f.open_pull_request(repo, forge.token, head="feature", base="main", title="Add f", body="Why", timeout=5)
    assert opened.pull_request == f.PullRequest(
        1, "https://gitlab.com/acme/tools/widgets/-/merge_requests/1", f.State.OPEN
    )
    (post,) = forge.calls("POST")
    assert post.path == "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests"
    assert post.headers["private-token"] == forge.token and "authorization" not in post.headers
    assert post.json == {"source_branch": "feature", "target_branch": "main", "title": "Add f", "description": "Why"}

    again = f.open_pull_request(repo, forge.token, head="feature", base="main", title="Add f", body="Why", timeout=5)
    assert again == f.Opened(opened.pull_request, existed=True)  # 409, then the open one looked up
    lookup = forge.calls("GET")[-1]
    assert lookup.query == {"source_branch": ["feature"], "target_branch": ["main"], "state": ["opened"]}

    assert f.close_pull_request(repo, forge.token, 1, timeout=5).state == f.State.CLOSED
    put = forge.calls("PUT")[-1]
    assert put.path == "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests/1"
    assert put.json == {"state_event": "close"}
    forge.pulls("gitlab", "acme/tools/widgets")[0].state = "merged"
    assert f.get_pull_request(repo, forge.token, 1, timeout=5).state == f.State.MERGED


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_wrong_token_and_an_unknown_repository_are_told_apart(widgets, forge, kind):
    with pytest.raises(f.TokenRejected, match="answered 401") as rejected:
        f.open_pull_request(widgets[kind], "wrong", head="feature", base="main", title="t", body="", timeout=5)
    assert rejected.value.status == 401
    unknown = f.Repository(kind, "acme/nothing", widgets[kind].api)
    with pytest.raises(f.NotFound, match="answered 404"):
        f.get_pull_request(unknown, forge.token, 1, timeout=5)


def test_a_forge_that_does_not_answer_is_unreachable(widgets):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    repo = f.Repository("github", "acme/widgets", f"http://127.0.0.1:{port}/github")
    with pytest.raises(f.Unreachable, match=rf"GitHub at http://127.0.0.1:{port}/github did not answer"):
        f.get_pull_request(repo, "t", 1, timeout=5)


def test_the_git_configuration_reaches_git_through_its_environment(tmp_path):
    from drivers import git as g

    repo = init_repo(tmp_path / "repo")
    config = f.git_auth_config(f.Repository("github", "a/b", GH), "tok")
    env = g.config_env(config)
    done = subprocess.run(
        ["git", "-C", str(repo), "config", "--get", "http.https://github.com/.extraheader"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == config["http.https://github.com/.extraHeader"]
    assert "tok" not in " ".join(env)  # values only in GIT_CONFIG_VALUE_n, never in argv


def test_an_answer_that_is_no_pull_request_is_refused_not_a_crash(widgets, forge):
    # The stand-in's GitHub answers the list of a repository's pull requests where a pull request is expected.
    repo = f.Repository("github", "acme/widgets", forge.github_api)
    client = forge_api._client(repo, forge.token, 5)
    with pytest.raises(f.Refused, match="answered something that is not a pull request"):
        client.pull(client.call("GET", client.base))
