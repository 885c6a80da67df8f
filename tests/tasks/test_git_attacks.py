"""What agents plant for the server's git, against every task operation: the REAL CLI in its
sandbox plants (bypass mode, the stand-in's ``run:`` phrase), real git in tmp folders.

Every planted command tries to leave a marker in the server's data folder (``settings.DATA_DIR``)
and notes in the place itself that it ran, and as which user (tests/git_plants.py). Whatever the
agent plants, no marker ever appears, and nothing runs as anyone but the agent's user.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.services.tokens import issue_token
from drivers.claude.sandbox import AGENT_UID
from tasks import services
from tasks.models import Task
from tests.api_client import ApiCaller
from tests.factories import make_session
from tests.git_plants import NEVER, plant, plant_script, pwned, ran
from tests.real_turns import answer_of, say
from tests.task_helpers import git, settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]

AGENT = str(AGENT_UID)


@pytest.fixture
def data(settings) -> Path:
    """The server's data folder, where every plant tries to leave its marker."""
    folder = Path(settings.DATA_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def completed(scheduler, user, prompt: str, *, engine, **fields) -> Task:
    task = await settled(scheduler, await services.create_task(engine=engine, user=user, prompt=prompt, **fields))
    assert task.status == Task.Status.COMPLETED, task.error
    return task


def plain_git_runs_them(folder: Path, data: Path, tmp_path: Path) -> set[str]:
    """The plants are live: plain git, as the server ran it before, in a copy of the folder."""
    copy = tmp_path / "copy-of-the-folder"
    shutil.copytree(folder, copy, symlinks=True)
    (copy / "README.md").write_text("changed\n")
    for args in (["status"], ["diff"], ["commit", "-qam", "x"]):
        subprocess.run(["git", "-C", str(copy), *args], capture_output=True, check=False)
    reached = pwned(data)
    for marker in data.glob("pwned-*"):
        marker.unlink()
    shutil.rmtree(copy)
    return reached


async def test_what_a_chat_plants_in_its_own_folder_never_runs_as_the_server(
    repo, scheduler, user, data, settings, rt, tmp_path
):
    """A chat in bypass mode plants hooks of every kind, fsmonitor, a filter driver, an external
    diff, a pager, signing, an included configuration in its own folder's .git. Then tasks are
    created, run, conflict, are rebased, diffed, merged and discarded there: no plant reaches the
    server, and what runs at all (the filter) runs in the sandbox as the agent's user."""
    settings.CLAUDE_PERMISSION_MODE = "bypassPermissions"
    chat = await sync_to_async(make_session)(owner=user)
    turn = await say(engine=rt, session=chat, user=user, text="run: " + plant_script(repo / ".git", data))
    assert "planted" in await answer_of(turn)
    rt.close_warm(session=str(chat.id))
    assert (repo / ".git" / "hooks" / "post-checkout").exists() and "fsmonitor" in git(repo, "config", "--list")
    assert {"included-fsmonitor", "external-diff", "clean"} <= plain_git_runs_them(repo, data, tmp_path)
    trace = repo / ".git" / "ran"
    shutil.rmtree(trace)
    trace.mkdir()

    first = await completed(scheduler, user, engine=rt, prompt="write shared.txt: from A", title="A")
    second = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from B")
    )
    assert second.status == Task.Status.PAUSED and second.reason == Task.Reason.CONFLICT, second.error
    assert "+from A" in await services.diff(task_id=first.pk)
    await services.merge(engine=rt, task_id=first.pk)
    second = await settled(scheduler, second)  # rebased onto the merge and resumed
    assert second.status == Task.Status.COMPLETED, second.error
    assert "+from B" in await services.diff(task_id=second.pk)
    third = await completed(scheduler, user, engine=rt, prompt="write third.txt: dropped")
    assert (await services.discard(engine=rt, task_id=third.pk)).status == Task.Status.CANCELLED
    await services.merge(engine=rt, task_id=second.pk)
    assert (repo / "shared.txt").read_text() == "from B\n"
    assert "+from B" in await services.diff(task_id=second.pk)

    assert pwned(data) == set()
    noted = ran(trace)
    assert not NEVER & set(noted), noted
    assert {"clean", "smudge"} <= set(noted) and set(noted.values()) == {AGENT}, noted


def task_plants(worktree: Path, data: Path, how: str) -> str:
    """A task's agent makes a repository of its own with plants in its worktree and points the
    worktree's .git at it (a gitdir file, or a link); and leaves a nested repository, plants
    included, to be committed as a gitlink."""
    point = "printf 'gitdir: .ev/.git\\n' > .git" if how == "git file" else "ln -s .ev/.git .git"
    return " && ".join(
        [
            "rm .git",  # it names a git directory the agent cannot see: its own git would refuse to work
            "git init -q .ev",
            "git -C .ev -c user.name=A -c user.email=a@example.com commit -q --allow-empty -m decoy",
            plant_script(worktree / ".ev" / ".git", data),
            "git init -q nested",
            "git -C nested -c user.name=A -c user.email=a@example.com commit -q --allow-empty -m nested",
            plant_script(worktree / "nested" / ".git", data),
            point,
            "echo work > work.txt",
            "echo nested > nested/file.txt",
        ]
    )


@pytest.mark.parametrize("how", ["git file", "link"])
@pytest.mark.parametrize("project", ["default", "team"])
async def test_a_task_pointing_its_worktree_at_a_planted_repository_changes_nothing_the_server_does(
    repo, shared_repo, scheduler, user, data, project, how, tmp_path, rt
):
    """The task alone: its agent (Bash allowed) plants a repository in its worktree and rewrites
    the worktree's .git. The run is committed, diffed and discarded through the API (it answered
    500 before): nothing planted runs, in the member's own folder (git in the sandbox) or in a
    shared project (git as the server)."""
    task = await completed(scheduler, user, engine=rt, prompt="echo: ready", project=project)
    worktree = Path(task.worktree_path)
    main_hook = Path(task.repo_path) / ".git" / "hooks" / "post-merge"
    # The repository's own .git is not the task agent's to write (nor, in the member's folder, to see).
    reach = f"{{ echo '#!/bin/sh' > {main_hook}; }} 2>/dev/null || echo OUT-OF-REACH"
    await services.resume(engine=rt, task_id=task.pk, message=f"run: {reach}; " + task_plants(worktree, data, how))
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    assert "work.txt" in task.files_changed
    committed = git(Path(task.repo_path), "show", "--name-only", "--format=", task.branch)
    assert committed.split() == ["work.txt"]  # the nested repositories are left out
    assert not main_hook.exists()
    assert "+work" in await services.diff(task_id=task.pk)
    notes = {**ran(worktree / ".ev" / ".git" / "ran"), **ran(worktree / "nested" / ".git" / "ran")}
    assert "included-fsmonitor" in plain_git_runs_them(worktree, data, tmp_path)  # the plants are live

    api = ApiCaller.with_token((await sync_to_async(issue_token)(user=user)).key, engine=rt)
    discarded = await api.post(f"/api/tasks/{task.pk}/discard")
    assert discarded.status_code == 200, discarded.content
    assert discarded.json()["status"] == "cancelled"
    assert not worktree.exists() and git(Path(task.repo_path), "branch", "--list", task.branch) == ""
    assert pwned(data) == set()
    # Only the agent's own CLI, in its sandbox, may have run what it planted for itself.
    assert set(notes.values()) <= {AGENT}, notes


async def test_a_pull_request_runs_nothing_planted(team_remote, forge, shared_repo, scheduler, user, data, rt):
    """A shared project's pull request after its task's agent planted a repository in the
    worktree, with hooks and fsmonitor in the project's own .git (written there before this
    release, when chats could): the push runs none of them."""
    trace = plant(shared_repo, data, unforeseen=False)
    task = await completed(scheduler, user, engine=rt, prompt="echo: ready", project="team")
    worktree = Path(task.worktree_path)
    await services.resume(engine=rt, task_id=task.pk, message="run: " + task_plants(worktree, data, "git file"))
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    task = await services.open_pull_request(task_id=task.pk)
    assert task.pr_state == Task.PullState.OPEN
    pushed = git(team_remote, "show", "--name-only", "--format=", task.branch)
    assert "work.txt" in pushed
    assert pwned(data) == set() and ran(trace) == {}
    notes = {**ran(worktree / ".ev" / ".git" / "ran"), **ran(worktree / "nested" / ".git" / "ran")}
    assert set(notes.values()) <= {AGENT}, notes
