"""Two tasks that change the same file: prevented by the hook, detected through git, rebased after a merge."""

from __future__ import annotations

import pytest

from chat.models import Event, Turn
from drivers import claims
from tasks import services
from tasks.models import Task
from tests.task_helpers import git, settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


def tool_results(stub_api) -> list[str]:
    from devtools.stub_steps import tool_results as _tool_results

    out = []
    for request in stub_api.requests:
        for message in request["body"].get("messages", []):
            if message.get("role") == "user":
                out.extend(_tool_results(message))
    return out


async def test_the_hook_refuses_a_held_file_and_the_later_task_resumes_after_the_merge(
    repo, scheduler, user, stub_api, rt
):
    first = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from A", title="A")
    )
    assert first.status == Task.Status.COMPLETED and first.files_changed == ["shared.txt"]

    second = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from B", title="B")
    )
    assert second.status == Task.Status.PAUSED and second.reason == Task.Reason.CONFLICT, second.error
    assert second.conflict_with_id == first.pk and second.conflict_files == ["shared.txt"]
    # The CLI handed the hook's reason to the model as the tool result.
    assert any(f"shared.txt is being changed by task #{first.pk} (A)" in r for r in tool_results(stub_api))
    # The log says so in the board's words: no "hook error", nothing shown as a failing tool.
    log = [e async for e in Event.objects.filter(turn__session_id=second.session_id).order_by("id")]
    assert [e.text for e in log if e.kind == Event.Kind.NOTICE] == [f"Paused: conflicts with #{first.pk} (shared.txt)"]
    assert not [e for e in log if e.kind == Event.Kind.TOOL_RESULT or ("hook error" in e.text.lower() and e.is_error)]
    assert second.status_text == f"Paused: conflicts with #{first.pk} (shared.txt)"
    # The refused write never happened.
    assert (repo / ".worktrees" / str(second.pk) / "shared.txt").read_text() == "original\n"
    with pytest.raises(services.TaskRefused, match="waits for task"):
        await services.resume(engine=rt, task_id=second.pk)

    await services.merge(engine=rt, task_id=first.pk)
    second = await settled(scheduler, second)
    assert second.status == Task.Status.COMPLETED, second.error
    assert second.conflict_files == [] and second.conflict_with_id is None
    # The agent is told what really happened to the other task.
    told = (await Turn.objects.filter(session_id=second.session_id).alast()).prompt
    assert told.startswith(f"Task #{first.pk} (A) was merged into main, and this branch was rebased onto main"), told
    worktree = repo / ".worktrees" / str(second.pk)
    assert (worktree / "shared.txt").read_text() == "from B\n"
    # Rebased onto the merge of A: A's commit is in its history.
    assert "A" in git(worktree, "log", "--format=%s").splitlines()

    await services.merge(engine=rt, task_id=second.pk)
    assert (repo / "shared.txt").read_text() == "from B\n"
    assert "A" in git(repo, "log", "--format=%s", "main").splitlines()


async def test_a_rebase_conflict_needs_attention_and_the_agent_resolves_it(repo, scheduler, user, rt):
    first = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from A", title="A")
    )
    # A shell command is not seen by the hook: the overlap is found through git after the run.
    second = await settled(
        scheduler,
        await services.create_task(
            engine=rt, user=user, prompt="run: echo from B > shared.txt", title="B by shell", skip_permissions=True
        ),
    )
    assert second.status == Task.Status.PAUSED and second.reason == Task.Reason.CONFLICT, second.error
    assert second.conflict_with_id == first.pk and second.conflict_files == ["shared.txt"]
    assert "B by shell" in git(repo, "log", "--format=%s", f"main..{second.branch}")

    await services.merge(engine=rt, task_id=first.pk)
    await scheduler.idle()
    second = await Task.objects.aget(pk=second.pk)
    assert second.status == Task.Status.PAUSED and second.reason == Task.Reason.ATTENTION
    assert second.conflict_files == ["shared.txt"]
    # Nothing is lost: the aborted rebase left B's commit on its branch.
    assert "B by shell" in git(repo, "log", "--format=%s", f"main..{second.branch}")
    assert (repo / ".worktrees" / str(second.pk) / "shared.txt").read_text() == "from B\n"

    await services.resume(engine=rt, task_id=second.pk, message="write shared.txt: from A and B")
    second = await settled(scheduler, second)
    assert second.status == Task.Status.COMPLETED, second.error
    await services.merge(engine=rt, task_id=second.pk)
    assert (repo / "shared.txt").read_text() == "from A and B\n"


async def test_discarding_the_holder_frees_the_waiting_task(repo, scheduler, user, rt):
    first = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from A", title="A")
    )
    second = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from B", title="B")
    )
    assert second.reason == Task.Reason.CONFLICT
    await services.discard(engine=rt, task_id=first.pk)
    second = await settled(scheduler, second)
    assert second.status == Task.Status.COMPLETED, second.error
    told = (await Turn.objects.filter(session_id=second.session_id).alast()).prompt
    assert told.startswith(f"Task #{first.pk} (A) was discarded without merging (its changes are not in main)"), told
    assert claims.held_by(services.store_for(second), task=second.pk) == ["shared.txt"]


async def test_the_hook_refuses_edits_outside_the_worktree(repo, scheduler, user, rt):
    task = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt=f"write {repo}/outside.txt: escape")
    )
    assert not (repo / "outside.txt").exists()
    assert task.status == Task.Status.COMPLETED
    assert task.files_changed == []
