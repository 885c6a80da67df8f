"""Tasks end to end: the REAL CLI against the stand-in, in real git worktrees."""

from __future__ import annotations

import re

import pytest

from chat.models import Event, Turn
from tasks import services
from tasks.models import Task
from tests.task_helpers import git, init_repo, settled, status_of, texts, wait_for

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def test_a_task_runs_in_its_worktree_commits_and_merges(repo, scheduler, user, rt):
    task = await services.create_task(
        engine=rt, user=user, prompt="write hello.txt: hi from the task", title="Add a greeting"
    )
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

    task = await services.merge(engine=rt, task_id=task.pk)
    assert task.status == Task.Status.MERGED
    assert (repo / "hello.txt").read_text() == "hi from the task\n"
    assert "Merge task #" in git(repo, "log", "-1", "--format=%s", "main")
    assert not worktree.exists()
    assert git(repo, "branch", "--list", task.branch) == ""
    # Merged work can still be reviewed: the diff is the merge commit's.
    assert task.merge_commit == git(repo, "rev-parse", "main").strip()
    assert "+hi from the task" in await services.diff(task_id=task.pk)
    # A task merged before merge commits were kept is found by the merge's message.
    await Task.objects.filter(pk=task.pk).aupdate(merge_commit="")
    assert "+hi from the task" in await services.diff(task_id=task.pk)


async def test_an_edit_task_reads_then_edits_and_its_results_name_their_tools(repo, scheduler, user, rt):
    task = await services.create_task(
        engine=rt, user=user, prompt="edit README.md: # demo => # A better title", title="Retitle"
    )
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    events = [
        (e.kind, e.name or e.data.get("tool"))
        async for e in Event.objects.filter(turn__session=task.session_id)
        if e.kind in (Event.Kind.TOOL_USE, Event.Kind.TOOL_RESULT)
    ]
    assert events == [("tool_use", "Read"), ("tool_result", "Read"), ("tool_use", "Edit"), ("tool_result", "Edit")]
    diff = await services.diff(task_id=task.pk)
    assert "-# demo" in diff and "+# A better title" in diff


@pytest.mark.parametrize("rt", [{"max_tasks": 2}], indirect=True)
async def test_tasks_run_in_parallel_under_the_limit(fake_repo, user, rt):
    """(On the stand-in process: the limit is the scheduler's.)"""
    repo = fake_repo
    tasks = [await services.create_task(engine=rt, user=user, prompt="slow 0.3", title=f"slow {i}") for i in range(4)]
    peak = 0

    async def running() -> bool:
        nonlocal peak
        peak = max(peak, await Task.objects.filter(status=Task.Status.RUNNING).acount())
        return False

    import asyncio

    async def watch():
        while True:
            await running()
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    await rt.idle()
    watcher.cancel()
    assert peak == 2
    for task in tasks:
        done = await Task.objects.aget(pk=task.pk)
        assert done.status == Task.Status.COMPLETED, done.error
        # Nothing changed: no commit, no files.
        assert done.files_changed == []
        assert (repo / ".worktrees" / str(task.pk)).is_dir()


@pytest.mark.parametrize("rt", [{"max_tasks": 1}], indirect=True)
async def test_higher_priority_starts_first_then_the_oldest(fake_repo, user, rt):
    blocker = await services.create_task(engine=rt, user=user, prompt="slow 0.5", title="blocker")
    await wait_for(lambda: _is(blocker, Task.Status.RUNNING))
    low = await services.create_task(engine=rt, user=user, prompt="echo: low", priority=0)
    high = await services.create_task(engine=rt, user=user, prompt="echo: high", priority=5)
    mid_old = await services.create_task(engine=rt, user=user, prompt="echo: mid 1", priority=2)
    mid_new = await services.create_task(engine=rt, user=user, prompt="echo: mid 2", priority="2")
    await rt.idle()
    started = [pk async for pk in Task.objects.order_by("started_at").values_list("pk", flat=True)]
    assert started == [blocker.pk, high.pk, mid_old.pk, mid_new.pk, low.pk]


async def _is(task: Task, status: str) -> bool:
    return await status_of(task) == status


async def test_pause_and_resume_keep_the_session(repo, scheduler, user, claude_env, rt):
    task = await services.create_task(engine=rt, user=user, prompt="slow 4 my name is Ada", title="Remember me")
    await wait_for(lambda: _has_streamed(task))
    paused = await services.pause(engine=rt, task_id=task.pk)
    assert paused.status == Task.Status.PAUSED and paused.reason == Task.Reason.USER
    assert paused.tokens > 0  # what the stopped run streamed counts
    session_id = paused.session_id
    first = await Turn.objects.filter(session_id=session_id).afirst()
    assert first.status == Turn.Status.STOPPED
    assert claude_env.transcript(session_id).exists()

    resumed = await services.resume(engine=rt, task_id=task.pk, message="what is my name")
    assert resumed.status in (Task.Status.QUEUED, Task.Status.RUNNING)  # the scheduler may have started it already
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    assert task.session_id == session_id
    assert await Turn.objects.filter(session_id=session_id).acount() == 2
    assert "Your name is Ada." in await texts(task)


async def test_a_run_that_changed_no_file_says_so_and_has_nothing_to_merge(repo, scheduler, user, rt):
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="echo: nothing to do"))
    assert task.status == Task.Status.COMPLETED and task.files_changed == []
    assert task.changed_nothing and task.status_text == "Completed: nothing changed"
    assert task.error.startswith("This run changed no file, so there is nothing to merge.")
    assert not task.can_merge and not task.can_open_pull_request and task.can_discard and task.can_resume
    with pytest.raises(services.TaskRefused, match="changed no file: its branch has nothing to merge"):
        await services.merge(engine=rt, task_id=task.pk)

    # A follow-up that changes a file makes it mergeable.
    await services.resume(engine=rt, task_id=task.pk, message="write later.txt: now something")
    task = await settled(scheduler, task)
    assert task.files_changed == ["later.txt"] and task.error == "" and task.can_merge
    assert task.status_text == "Completed"


async def _has_streamed(task: Task) -> bool:
    from chat.models import Event

    task = await Task.objects.aget(pk=task.pk)
    return bool(task.session_id) and await Event.objects.filter(turn__session_id=task.session_id, kind="text").aexists()


async def test_a_follow_up_runs_in_the_worktree_and_is_committed(repo, scheduler, user, rt):
    task = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write a.txt: one", title="First file")
    )
    assert task.status == Task.Status.COMPLETED
    with pytest.raises(services.TaskRefused, match="follow-up"):
        await services.resume(engine=rt, task_id=task.pk)  # a completed task needs an instruction
    await services.resume(engine=rt, task_id=task.pk, message="write b.txt: two")
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    assert task.files_changed == ["a.txt", "b.txt"]
    assert len(git(repo, "log", "--format=%s", f"main..{task.branch}").splitlines()) == 2


async def test_discard_removes_worktree_and_branch_without_merging(repo, scheduler, user, rt):
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="write gone.txt: bye"))
    task = await services.discard(engine=rt, task_id=task.pk)
    assert task.status == Task.Status.CANCELLED
    assert not (repo / ".worktrees" / str(task.pk)).exists()
    assert git(repo, "branch", "--list", task.branch) == ""
    assert not (repo / "gone.txt").exists()
    with pytest.raises(services.TaskRefused):
        await services.merge(engine=rt, task_id=task.pk)


async def test_terminate_keeps_the_work_on_the_branch(repo, scheduler, user, rt):
    task = await services.create_task(engine=rt, user=user, prompt="slow 5", title="Long one")
    await wait_for(lambda: _has_streamed(task))
    (repo / ".worktrees" / str(task.pk) / "partial.txt").write_text("half done\n")
    task = await services.terminate(engine=rt, task_id=task.pk)
    assert task.status == Task.Status.CANCELLED
    assert "partial.txt" in git(repo, "show", "--name-only", "--format=%s", task.branch)


async def test_names_come_from_the_id_only(repo, scheduler, user, rt):
    task = await services.create_task(
        engine=rt, user=user, prompt="echo: x", title="../../etc; rm -rf / $(whoami) `id`"
    )
    assert task.branch == f"auto-claude/{task.pk}"
    assert task.worktree_path == str(repo / ".worktrees" / str(task.pk))
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED


async def test_a_shared_project_that_is_not_a_repository_is_refused(repo, scheduler, user, tmp_path, settings, rt):
    from chat.models import ProjectAccess

    plain = tmp_path / "plain"
    plain.mkdir()
    settings.CLAUDE_PROJECTS = {"plain": plain}
    await ProjectAccess.objects.acreate(project="plain", everyone=True)
    with pytest.raises(services.TaskRefused, match=r"is not the top of one\. Run `git init` in .*CLAUDE_PROJECTS"):
        await services.create_task(engine=rt, user=user, prompt="x", project="plain")
    with pytest.raises(services.TaskRefused, match="There is no project 'nope'"):
        await services.create_task(engine=rt, user=user, prompt="x", project="nope")
    assert await Task.objects.acount() == 0


async def test_an_own_folder_that_is_no_repository_becomes_one_of_its_own(
    repo, scheduler, user, tmp_path, settings, rt
):
    """However the folder was first made (a chat made through the API, an older release, the demo),
    its first task makes it a repository: never the one around it (here the app's checkout)."""
    around = init_repo(tmp_path / "app-checkout")
    settings.CLAUDE_WORKDIR = around / "data" / "workdir"
    own = around / "data" / "workdir" / str(user.pk)
    own.mkdir(parents=True)
    (own / "notes.txt").write_text("from a chat\n")
    before = git(around, "log", "--format=%H", "main"), git(around, "branch", "--list")
    task = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write demo.txt: in the folder")
    )
    assert task.status == Task.Status.COMPLETED, task.error
    assert task.repo_path == str(own.resolve())
    assert git(own, "log", "--format=%s", "main") == "Your own folder\n"
    await services.merge(engine=rt, task_id=task.pk)
    assert (own / "demo.txt").read_text() == "in the folder\n" and (own / "notes.txt").exists()
    # The app's checkout around it got nothing: no commit, no branch, no file.
    assert (git(around, "log", "--format=%H", "main"), git(around, "branch", "--list")) == before
    assert not (around / "demo.txt").exists()


async def test_a_shared_project_inside_a_repository_is_refused_and_the_repository_around_it_is_left_alone(
    repo, scheduler, user, tmp_path, settings, rt
):
    from chat.models import ProjectAccess

    around = init_repo(tmp_path / "around")
    inner = around / "members"
    inner.mkdir()
    settings.CLAUDE_PROJECTS = {"inner": inner}
    await ProjectAccess.objects.acreate(project="inner", everyone=True)
    before = git(around, "branch", "--list"), git(around, "worktree", "list"), git(around, "status", "--porcelain")
    with pytest.raises(
        services.TaskRefused, match=f"is not the top of one. It lies inside the repository {re.escape(str(around))}"
    ):
        await services.create_task(engine=rt, user=user, prompt="write x.txt: no", project="inner")
    assert (
        git(around, "branch", "--list"),
        git(around, "worktree", "list"),
        git(around, "status", "--porcelain"),
    ) == before
    assert await Task.objects.acount() == 0
