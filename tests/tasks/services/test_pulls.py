"""A completed task as a pull request: the REAL CLI runs the task, its branch is pushed to a real
bare repository, and the local stand-in for GitHub's and GitLab's APIs answers (tests/forge_standin.py)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from drivers.forge import RemoteSpec
from tasks import services
from tasks.models import Action, Task
from tests.forge_standin import Pull
from tests.task_helpers import bare_remote, git, settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


async def completed(
    rt,
    scheduler,
    user,
    *,
    prompt: str = "write hello.txt: hi from the task",
    title: str = "Add a greeting",
    project: str = "team",
) -> Task:
    task = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt=prompt, title=title, project=project)
    )
    assert task.status == Task.Status.COMPLETED, task.error
    return task


def remote_head(bare: Path, branch: str) -> str:
    """The commit of ``branch`` on the remote, "" if it has none."""
    done = subprocess.run(
        ["git", "-C", str(bare), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def refuse_pushes(bare: Path, why: str) -> Path:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho '{why}' >&2\nexit 1\n")
    hook.chmod(0o755)
    return hook


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_completed_task_becomes_a_pull_request_on_github(team_remote, forge, scheduler, user, shared_repo, rt):
    task = await completed(rt, scheduler, user)
    assert Action.PULL_REQUEST in task.actions and Action.MERGE in task.actions

    task = await services.open_pull_request(task_id=task.pk)

    assert (task.pr_forge, task.pr_repository, task.pr_number, task.pr_state) == ("github", "acme/widgets", 1, "open")
    assert task.pr_url == "https://github.com/acme/widgets/pull/1" and task.pr_label == "#1"
    assert task.status == Task.Status.COMPLETED and task.pr_checked_at is not None
    assert remote_head(team_remote, task.branch) == git(shared_repo, "rev-parse", task.branch).strip() == task.pr_head
    (post,) = forge.requests
    assert (post.method, post.path) == ("POST", "/github/repos/acme/widgets/pulls")
    assert post.headers["authorization"] == f"Bearer {forge.token}"
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    assert set(post.json) == {"title", "head", "base", "body"}
    assert (post.json["title"], post.json["head"], post.json["base"]) == ("Add a greeting", task.branch, "main")
    body = post.json["body"]
    assert body.startswith("write hello.txt: hi from the task\n")
    assert f"task #{task.pk}" in body and f"branch `{task.branch}` onto `main`" in body
    assert "**Files changed (1):** `hello.txt`" in body
    assert f"{task.tokens:,} tokens, ${task.cost_usd:.4f}, 1 turn" in body
    assert "Add a greeting" in body.split("**Commits:**")[1]
    assert "1. **Asked:** write hello.txt: hi from the task" in body and "**Answered:**" in body

    # A follow-up, then the button again: its commit goes to the same pull request, which is only
    # asked whether it is still open (nothing is opened).
    first_head = task.pr_head
    await services.resume(engine=rt, task_id=task.pk, message="write more.txt: more")
    task = await settled(scheduler, task)
    task = await services.open_pull_request(task_id=task.pk)
    assert task.pr_number == 1 and task.pr_state == "open" and task.pr_head != first_head
    assert remote_head(team_remote, task.branch) == task.pr_head
    assert [(r.method, r.path) for r in forge.requests[1:]] == [("GET", "/github/repos/acme/widgets/pulls/1")]
    assert len(forge.pulls("github", "acme/widgets")) == 1

    # Closed on the forge meanwhile: the next press opens another one.
    forge.pulls("github", "acme/widgets")[0].state = "closed"
    task = await services.open_pull_request(task_id=task.pk)
    assert task.pr_number == 2 and task.pr_state == "open" and len(forge.pulls("github", "acme/widgets")) == 2


async def test_a_merge_request_on_gitlab_and_discard_closes_it(team_remote, forge, scheduler, user, settings, rt):
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("origin", "gitlab", "acme/tools/widgets")}
    task = await completed(rt, scheduler, user)

    task = await services.open_pull_request(task_id=task.pk)

    assert (task.pr_forge, task.pr_repository, task.pr_label) == ("gitlab", "acme/tools/widgets", "!1")
    assert task.pr_url == "https://gitlab.com/acme/tools/widgets/-/merge_requests/1"
    (post,) = forge.requests
    assert (post.method, post.path) == ("POST", "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests")
    assert post.headers["private-token"] == forge.token and "authorization" not in post.headers
    assert set(post.json) == {"source_branch", "target_branch", "title", "description"}
    assert (post.json["source_branch"], post.json["target_branch"], post.json["title"]) == (
        task.branch,
        "main",
        "Add a greeting",
    )
    assert "**Files changed (1):** `hello.txt`" in post.json["description"]
    assert remote_head(team_remote, task.branch) == task.pr_head

    # Pressed again: the open one is only asked about.
    again = await services.open_pull_request(task_id=task.pk)
    assert again.pr_number == 1 and [(r.method, r.path) for r in forge.requests[-1:]] == [
        ("GET", "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests/1")
    ]
    # One open for the branch that the task does not know (opened by someone): GitLab's 409, and it is linked.
    await Task.objects.filter(pk=task.pk).aupdate(pr_state="", pr_number=None)
    again = await services.open_pull_request(task_id=task.pk)
    assert again.pr_number == 1 and forge.requests[-2].method == "POST"
    assert forge.requests[-1].query == {"source_branch": [task.branch], "target_branch": ["main"], "state": ["opened"]}

    task = await services.discard(engine=rt, task_id=task.pk)

    assert task.status == Task.Status.CANCELLED and task.pr_state == "closed"
    put = forge.calls("PUT")[-1]
    assert (put.path, put.json) == (
        "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests/1",
        {"state_event": "close"},
    )
    assert forge.pulls("gitlab", "acme/tools/widgets")[0].state == "closed"
    assert f"Its pull request !1 on GitLab ({task.pr_url}) was closed." in task.error
    # The branch pushed for it stays on the remote; the local worktree and branch are gone.
    assert remote_head(team_remote, task.branch) and not Path(task.worktree_path).exists()


async def test_discard_closes_a_github_pull_request(team_remote, forge, scheduler, user, rt):
    task = await services.open_pull_request(task_id=(await completed(rt, scheduler, user)).pk)

    task = await services.discard(engine=rt, task_id=task.pk)

    patch = forge.calls("PATCH")[-1]
    assert (patch.path, patch.json) == ("/github/repos/acme/widgets/pulls/1", {"state": "closed"})
    assert patch.headers["authorization"] == f"Bearer {forge.token}"
    assert task.pr_state == "closed" and "was closed" in task.error


async def test_merged_on_the_forge_the_task_is_merged_and_its_worktree_removed(
    team_remote, forge, scheduler, user, shared_repo, rt
):
    task = await services.open_pull_request(task_id=(await completed(rt, scheduler, user)).pk)
    asked = len(forge.requests)
    # Asked a moment ago: opening the page again asks nothing.
    assert (await services.refresh_pull_request(engine=rt, task_id=task.pk)).pr_state == "open"
    assert len(forge.requests) == asked

    forge.merge("github", "acme/widgets", 1)
    task = await services.refresh_pull_request(engine=rt, task_id=task.pk, force=True)

    assert forge.requests[-1].method == "GET" and forge.requests[-1].path == "/github/repos/acme/widgets/pulls/1"
    assert task.pr_state == "merged" and task.status == Task.Status.MERGED and task.merged_at is not None
    assert "Merged through pull request #1 on GitHub" in task.error
    assert not Path(task.worktree_path).exists() and git(shared_repo, "branch", "--list", task.branch) == ""
    assert task.actions == frozenset()
    # Merged is final: nothing more is asked.
    await services.refresh_pull_request(engine=rt, task_id=task.pk, force=True)
    assert forge.requests[-1].method == "GET" and len(forge.calls("GET")) == 1


async def test_merged_on_the_forge_a_task_changed_since_its_push_is_kept(team_remote, forge, scheduler, user, rt):
    task = await services.open_pull_request(task_id=(await completed(rt, scheduler, user)).pk)
    worktree = Path(task.worktree_path)
    (worktree / "later.txt").write_text("not pushed\n")
    git(worktree, "add", "later.txt")
    git(worktree, "commit", "-q", "-m", "later")
    forge.merge("github", "acme/widgets", 1)

    task = await services.refresh_pull_request(engine=rt, task_id=task.pk, force=True)

    assert task.pr_state == "merged" and task.status == Task.Status.COMPLETED and worktree.is_dir()
    assert "changed after its last push" in task.error and "Open another pull request" in task.error
    # Another one, for what came later.
    task = await services.open_pull_request(task_id=task.pk)
    assert task.pr_number == 2 and task.pr_state == "open"


async def test_each_refusal_says_what_to_do_and_the_task_opens_once_fixed(
    team_remote, forge, scheduler, user, settings, monkeypatch, rt
):
    task = await completed(rt, scheduler, user)
    refusals: list[str] = []

    async def refused(match: str) -> str:
        with pytest.raises(services.TaskRefused, match=match) as caught:
            await services.open_pull_request(task_id=task.pk)
        refusals.append(str(caught.value))
        return str(caught.value)

    # No token: nothing is pushed.
    monkeypatch.delenv("CLAUDE_FORGE_TOKEN_TEAM")
    await refused(
        r"There is no GitHub token for project 'team'.* Set CLAUDE_FORGE_TOKEN_TEAM in the server's "
        r"environment .* and restart the server\."
    )
    assert remote_head(team_remote, task.branch) == "" and forge.requests == []
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", forge.token)

    # The remote refuses the push: git's own words, and nothing asked of the forge.
    hook = refuse_pushes(team_remote, "pushes are closed today")
    text = await refused(rf"git could not push {task.branch} to origin \({re.escape(str(team_remote))}\): ")
    assert "remote: pushes are closed today" in text and "pre-receive hook declined" in text and " To " not in text
    assert "Nothing was opened on GitHub. It used the remote's own credentials" in text
    assert forge.requests == [] and remote_head(team_remote, task.branch) == ""
    hook.unlink()

    # A token GitHub rejects: the branch is pushed, the pull request is not opened.
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", "revoked-token")
    text = await refused(
        r"GitHub refused the token in CLAUDE_FORGE_TOKEN_TEAM: GitHub answered 401 \(Bad credentials\)\. "
        r"Set it to a fine-grained token that may read and write its pull requests and contents"
    )
    assert f"The branch {task.branch} was pushed to origin; press Open pull request again once that is fixed." in text
    assert (
        remote_head(team_remote, task.branch) and forge.requests[-1].headers["authorization"] == "Bearer revoked-token"
    )
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", forge.token)

    # A repository the forge does not have (or the token may not see).
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("origin", "github", "acme/gone")}
    await refused(
        r"GitHub has no repository acme/gone, or the token in CLAUDE_FORGE_TOKEN_TEAM may not see it: GitHub "
        r"answered 404 \(Not Found\)\. Check CLAUDE_PROJECT_REMOTES"
    )
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("origin", "github", "acme/widgets")}

    # The forge does not answer.
    port = closed_port()
    settings.CLAUDE_GITHUB_API_URL = f"http://127.0.0.1:{port}/github"
    await refused(
        rf"GitHub at http://127.0.0.1:{port}/github did not answer \(.*\)\. Check the server's network "
        r"\(behind a proxy: HTTPS_PROXY\) and CLAUDE_GITHUB_API_URL"
    )
    settings.CLAUDE_GITHUB_API_URL = forge.github_api

    # The remote the configuration names is not in the repository.
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("upstream", "github", "acme/widgets")}
    await refused(
        r"The repository of project 'team' has no git remote 'upstream'\. Add it with `git remote add upstream"
    )
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("origin", "github", "acme/widgets")}

    task = await services.open_pull_request(task_id=task.pk)
    assert task.pr_number == 1 and task.pr_state == "open"
    assert all(forge.token not in text and "revoked-token" not in text for text in refusals)


async def test_a_pull_request_someone_opened_already_is_linked(team_remote, forge, scheduler, user, shared_repo, rt):
    task = await completed(rt, scheduler, user)
    # Someone pushed the branch and opened its pull request by hand.
    git(shared_repo, "push", "-q", "origin", task.branch)
    forge.pulls("github", "acme/widgets").append(Pull(1, task.branch, "main", "By hand", "", "open"))

    task = await services.open_pull_request(task_id=task.pk)

    assert (task.pr_number, task.pr_url, task.pr_state) == (1, "https://github.com/acme/widgets/pull/1", "open")
    assert [(r.method, r.path) for r in forge.requests] == [
        ("POST", "/github/repos/acme/widgets/pulls"),
        ("GET", "/github/repos/acme/widgets/pulls"),
    ]
    assert len(forge.pulls("github", "acme/widgets")) == 1


async def test_without_a_remote_no_pull_request_is_offered_and_pressing_says_why(
    shared_repo, scheduler, user, settings, forge, rt
):
    settings.CLAUDE_PROJECT_REMOTES = {}
    task = await completed(rt, scheduler, user)
    assert Action.PULL_REQUEST not in task.actions and not task.can_open_pull_request and task.can_merge
    with pytest.raises(
        services.TaskRefused,
        match=r"Project 'team' has no remote to open pull requests on\. An admin can "
        r"name one with CLAUDE_PROJECT_REMOTES=\"team=origin:github:OWNER/REPO\"",
    ):
        await services.open_pull_request(task_id=task.pk)
    own = await completed(rt, scheduler, user, project="default")
    with pytest.raises(services.TaskRefused, match="works in its creator's own folder, which has no remote"):
        await services.open_pull_request(task_id=own.pk)

    # A remote named in the configuration whose URL tells no forge: offered, and pressing says what to name.
    bare = bare_remote(shared_repo.parent / "plain.git", shared_repo, name="upstream")
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("upstream")}
    task = await Task.objects.aget(pk=task.pk)
    assert task.can_open_pull_request
    with pytest.raises(
        services.TaskRefused,
        match=rf"The URL of the remote 'upstream' of project 'team' \({bare}\) does "
        r"not tell its forge",
    ):
        await services.open_pull_request(task_id=task.pk)
    assert forge.requests == []


async def test_an_origin_on_github_needs_no_configuration(
    shared_repo, forge, scheduler, user, settings, monkeypatch, tmp_path, rt
):
    bare = bare_remote(tmp_path / "widgets.git", shared_repo)
    # Fetched from GitHub (which tells the forge and repository); pushed, here, to the bare copy.
    git(shared_repo, "remote", "set-url", "origin", "https://github.com/acme/widgets.git")
    git(shared_repo, "remote", "set-url", "--push", "origin", str(bare))
    forge.add_repository("github", "acme/widgets", bare)
    settings.CLAUDE_PROJECT_REMOTES = {}
    settings.CLAUDE_GITHUB_API_URL = forge.github_api
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", forge.token)
    task = await completed(rt, scheduler, user)
    assert task.can_open_pull_request

    task = await services.open_pull_request(task_id=task.pk)

    assert (task.pr_repository, task.pr_number) == ("acme/widgets", 1)
    assert remote_head(bare, task.branch) == task.pr_head
