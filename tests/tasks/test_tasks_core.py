"""Tasks end to end: the REAL CLI against the stand-in, in real git worktrees."""

from __future__ import annotations

import pytest

from chat.models import Task, Turn
from chat.tasks import services
from tests.tasks.conftest import git

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


async def settled(scheduler, task: Task) -> Task:
    await scheduler.idle()
    return await Task.objects.aget(pk=task.pk)


async def test_a_task_runs_in_its_worktree_commits_and_merges(repo, scheduler, user):
    task = await services.create_task(user=user, prompt="write hello.txt: hi from the task", title="Add a greeting")
    assert task.branch == f"auto-claude/{task.pk}"
    assert task.worktree_path == str(repo / ".worktrees" / str(task.pk))
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    worktree = repo / ".worktrees" / str(task.pk)
    assert (worktree / "hello.txt").read_text() == "hi from the task\n"
    assert not (repo / "hello.txt").exists()
    assert task.files_changed == ["hello.txt"]
    assert "Add a greeting" in git(repo, "log", "--format=%s", f"main..{task.branch}")
    assert task.tokens > 0 and task.cost_usd > 0
    assert "+hi from the task" in await services.diff(task_id=task.pk)
    # The main checkout does not show the worktrees folder as untracked.
    assert git(repo, "status", "--porcelain") == ""

    task = await services.merge(task_id=task.pk)
    assert task.status == Task.Status.MERGED
    assert (repo / "hello.txt").read_text() == "hi from the task\n"
    assert "Merge task #" in git(repo, "log", "-1", "--format=%s", "main")
    assert not worktree.exists()
    assert git(repo, "branch", "--list", task.branch) == ""
