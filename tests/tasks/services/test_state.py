"""A task's state: one table of transitions, one writer (compare-and-set, audit rows), follow-ups
off the request. Runs on the stand-in CLI process (``fake_cli``): what is tested is the app's
states and orderings, which the real CLI adds nothing to."""

from __future__ import annotations

import asyncio

import pytest

from tasks import services
from tasks.models import ACTIONS, TRANSITIONS, Action, Task, TaskEvent, TaskTransition
from tasks.services.state import TransitionRefused, transition
from tests.factories import make_user
from tests.task_helpers import settled, status_of, wait_for

# The table's tests change rows without an engine (no scheduler takes a queued row); the others run tasks on one (rt).
pytestmark = [pytest.mark.django_db(transaction=True)]


async def _task_in(user, status: Task.Status, reason: Task.Reason = Task.Reason.NONE) -> Task:
    """A task row in a given state (its repository is never reached: only its state is changed)."""
    return await Task.objects.acreate(
        created_by=user,
        title=f"in {status}",
        prompt="p",
        project="default",
        repo_path="/nonexistent",
        base_branch="main",
        status=status,
        reason=reason,
    )


def _reason_for(rule) -> Task.Reason:
    """A reason the rule takes the task from (the first one it names, else none)."""
    return sorted(rule.from_reasons)[0] if rule.from_reasons else Task.Reason.NONE


@pytest.mark.parametrize(("start", "event"), sorted(TRANSITIONS), ids=lambda v: str(v))
async def test_every_allowed_transition_goes_where_the_table_says_and_is_kept(user, start, event):
    rule = TRANSITIONS[(start, event)]
    task = await _task_in(user, start, _reason_for(rule))
    done = await transition(task_id=task.pk, event=event, by=user, why="table")
    assert (done.status, done.reason) == (rule.to, rule.reason)
    row = await TaskTransition.objects.select_related("by").aget(task=task)
    assert (row.from_status, row.to_status, row.reason, row.event, row.by, row.why) == (
        start,
        rule.to,
        rule.reason,
        event,
        user,
        "table",
    )


# One event the table refuses in each state, and what the refusal must say can be done instead.
REFUSED = {
    Task.Status.PENDING: (TaskEvent.MERGE, "What can be done now: Pause, Terminate, Discard."),
    Task.Status.QUEUED: (TaskEvent.COMPLETE, "What can be done now: Pause, Terminate, Discard."),
    Task.Status.RUNNING: (TaskEvent.DISCARD, "What can be done now: Pause, Terminate."),
    Task.Status.PAUSED: (TaskEvent.MERGE, "What can be done now: Resume, Terminate, Discard."),
    Task.Status.FAILED: (TaskEvent.TERMINATE, "What can be done now: Resume, Discard."),
    Task.Status.COMPLETED: (TaskEvent.START, "What can be done now: Resume, Discard."),
    Task.Status.MERGED: (TaskEvent.DISCARD, "It is merged: nothing more can be done to it."),
    Task.Status.CANCELLED: (TaskEvent.RESUME, "Its worktree and branch are gone"),
}


@pytest.mark.parametrize("start", list(Task.Status), ids=str)
async def test_a_transition_the_table_lacks_is_refused_naming_the_state_and_what_to_do(user, start):
    event, what = REFUSED[start]
    assert (start, event) not in TRANSITIONS
    task = await _task_in(user, start)
    with pytest.raises(TransitionRefused) as refused:
        await transition(task_id=task.pk, event=event, by=user)
    text = str(refused.value)
    # (A row with no worktree and no files: what depends on those is not offered: Merge of a task
    # that changed nothing, Discard of a cancelled one.)
    assert text.startswith(f"Task #{task.pk} is {task.status_text.lower()}: "), text
    assert what in text, text
    assert await status_of(task) == start
    assert not await TaskTransition.objects.filter(task=task).aexists()


async def test_a_task_waiting_for_files_is_not_resumed_by_hand_but_by_the_unblock(user):
    task = await _task_in(user, Task.Status.PAUSED, Task.Reason.CONFLICT)
    with pytest.raises(TransitionRefused, match="only a paused, failed or completed task can be resumed"):
        await transition(task_id=task.pk, event=TaskEvent.RESUME, by=user)
    assert (await transition(task_id=task.pk, event=TaskEvent.UNBLOCK)).status == Task.Status.QUEUED


def test_the_buttons_are_read_from_the_table():
    for status, actions in ACTIONS.items():
        for action in actions - {Action.PULL_REQUEST}:
            assert (status, TaskEvent(action.value)) in TRANSITIONS
    assert ACTIONS[Task.Status.COMPLETED] >= {Action.MERGE, Action.PULL_REQUEST}
    assert ACTIONS[Task.Status.MERGED] == frozenset()


async def _completed(rt, user, prompt: str, title: str) -> Task:
    task = await services.create_task(engine=rt, user=user, prompt=prompt, title=title)
    task = await settled(rt.tasks, task)
    assert task.status == Task.Status.COMPLETED, task.error
    return task


async def _rows(task: Task) -> list[tuple[str, str, str, str | None, str]]:
    return [
        (row.event, row.from_status, row.to_status, row.by.username if row.by else None, row.why)
        async for row in TaskTransition.objects.filter(task=task).select_related("by").order_by("at", "id")
    ]


async def test_two_merges_at_once_one_wins_the_other_is_told_it_is_merged(fake_repo, user, rt):
    task = await _completed(rt, user, "write notes.txt: hi", "Notes")
    results = await asyncio.gather(
        services.merge(engine=rt, task_id=task.pk, by=user),
        services.merge(engine=rt, task_id=task.pk, by=user),
        return_exceptions=True,
    )
    merged = [r for r in results if isinstance(r, Task)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(merged) == 1 and merged[0].status == Task.Status.MERGED
    assert len(refused) == 1 and isinstance(refused[0], services.TaskRefused)
    assert str(refused[0]) == (
        f"Task #{task.pk} is merged: only a completed task can be merged. It is merged: nothing more can be done to it."
    )
    assert [r[0] for r in await _rows(task)].count(TaskEvent.MERGE) == 1


async def test_a_merge_and_a_discard_at_once_one_wins_the_other_is_refused(fake_repo, user, rt):
    task = await _completed(rt, user, "write notes.txt: hi", "Notes")
    results = await asyncio.gather(
        services.discard(engine=rt, task_id=task.pk, by=user),
        services.merge(engine=rt, task_id=task.pk, by=user),
        return_exceptions=True,
    )
    assert isinstance(results[0], Task) and results[0].status == Task.Status.CANCELLED
    assert isinstance(results[1], services.TaskRefused)
    assert str(results[1]).startswith(f"Task #{task.pk} is cancelled: only a completed task can be merged."), results[1]
    assert (await status_of(task)) == Task.Status.CANCELLED
    # Nothing was merged into main.
    assert not (fake_repo / "notes.txt").exists()


async def test_two_discards_at_once_one_wins_the_other_finds_nothing_to_discard(fake_repo, user, rt):
    task = await _completed(rt, user, "write notes.txt: hi", "Notes")
    results = await asyncio.gather(
        services.discard(engine=rt, task_id=task.pk, by=user),
        services.discard(engine=rt, task_id=task.pk, by=user),
        return_exceptions=True,
    )
    assert isinstance(results[0], Task) and results[0].status == Task.Status.CANCELLED
    assert isinstance(results[1], services.TaskRefused)
    assert str(results[1]) == (
        f"Task #{task.pk} is cancelled: there is nothing to discard. Its worktree and branch are gone: start a new "
        "task if there is more to do."
    )
    assert [r[0] for r in await _rows(task)].count(TaskEvent.DISCARD) == 1


async def test_the_files_a_run_changed_are_checked_beside_the_pump_one_check_at_a_time(fake_repo, user, rt):
    from tasks.services.runs import FilesWatch

    task = await _completed(rt, user, "write notes.txt: hi", "Notes")
    (fake_repo / ".worktrees" / str(task.pk) / "more.txt").write_text("more\n")
    watch = FilesWatch(task)
    watch.poke()  # a tool result: returns at once, the check runs beside
    first = watch.job
    for _ in range(5):
        watch.poke()  # results during the check ask for one more check after it, no second one at once
    assert watch.job is first and watch.again
    await watch.job
    assert (await Task.objects.aget(pk=task.pk)).files_changed == ["more.txt", "notes.txt"]


async def _running_turn_streamed(task: Task) -> bool:
    from chat.models import Event

    task = await Task.objects.aget(pk=task.pk)
    return task.status == Task.Status.RUNNING and await Event.objects.filter(turn__session_id=task.session_id).aexists()


async def test_audit_rows_say_who_did_what_and_why(fake_repo, user, rt):
    task = await services.create_task(engine=rt, user=user, prompt="slow 30", title="Slow one")
    await wait_for(lambda: _running_turn_streamed(task))
    paused = await services.act(engine=rt, user=user, task=task, action=Action.PAUSE)
    assert paused.status == Task.Status.PAUSED
    await services.act(engine=rt, user=user, task=paused, action=Action.RESUME, message="write notes.txt: hello")
    task = await settled(rt.tasks, task)
    assert task.status == Task.Status.COMPLETED, task.error
    merged = await services.act(engine=rt, user=user, task=task, action=Action.MERGE)
    assert merged.status == Task.Status.MERGED
    name = user.username
    assert await _rows(task) == [
        ("create", "", "pending", name, "Slow one"),
        ("queue", "pending", "queued", name, "ready to run"),
        ("start", "queued", "running", None, ""),
        ("pause", "running", "paused", name, "its run was stopped"),
        ("resume", "paused", "queued", name, ""),
        ("start", "queued", "running", None, ""),
        ("complete", "running", "completed", None, "1 file(s) changed"),
        ("merge", "completed", "merged", name, "into main"),
    ]

    other = await services.create_task(engine=rt, user=user, prompt="write other.txt: x", title="Other")
    other = await settled(rt.tasks, other)
    admin = await _staff()
    await services.act(engine=rt, user=admin, task=other, action=Action.DISCARD)
    assert (await _rows(other))[-1] == (
        "discard",
        "completed",
        "cancelled",
        admin.username,
        "the worktree and branch were removed without merging",
    )


async def _staff():
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_user)(username="boss", is_staff=True)


async def test_the_task_page_lists_its_history(fake_repo, user, rt):
    from tests.api_client import EngineClient

    task = await _completed(rt, user, "write notes.txt: hi", "Notes")
    await services.act(engine=rt, user=user, task=task, action=Action.MERGE)
    client = EngineClient(engine=rt)
    await client.aforce_login(user)
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    history = page[page.index('id="task-history"') : page.index("</section>", page.index('id="task-history"'))]
    assert "<h2>History</h2>" in history
    items = [item.split("</li>")[0] for item in history.split("<li>")[1:]]
    assert len(items) == 5
    assert "Created:" in items[0] and f"by {user.username}" in items[0]
    assert "Started:" in items[2] and "Queued → Running" in items[2] and "by the system" in items[2]
    assert "Merged:" in items[4] and "Completed → Merged" in items[4] and f"by {user.username} · into main" in items[4]


async def test_merge_returns_before_the_waiting_task_is_rebased_and_it_resumes_after(fake_repo, user, rt):
    first = await _completed(rt, user, "write shared.txt: from A", "A")
    second = await settled(
        rt.tasks, await services.create_task(engine=rt, user=user, prompt="write shared.txt: from B", title="B")
    )
    assert (second.status, second.reason) == (Task.Status.PAUSED, Task.Reason.CONFLICT), second.error

    merged = await services.merge(engine=rt, task_id=first.pk, by=user)
    # Merge has returned, and the rebase of the task that waited is a background job of the engine
    # (looked at before this test awaits anything: it has not run a step yet).
    assert merged.status == Task.Status.MERGED
    follow_ups = [job for job in asyncio.all_tasks() if job.get_name() == f"task-unblock-{first.pk}"]
    assert len(follow_ups) == 1 and not follow_ups[0].done()
    waiting = await Task.objects.aget(pk=second.pk)
    assert (waiting.status, waiting.reason) == (Task.Status.PAUSED, Task.Reason.CONFLICT)
    assert not await TaskTransition.objects.filter(task=second, event=TaskEvent.UNBLOCK).aexists()

    second = await settled(rt.tasks, second)
    assert second.status == Task.Status.COMPLETED, second.error
    events = [row[0] for row in await _rows(second)]
    assert events[-4:] == ["block", "unblock", "start", "complete"]
    unblocked = await TaskTransition.objects.aget(task=second, event=TaskEvent.UNBLOCK)
    assert unblocked.by_id is None and unblocked.why == f"Task #{first.pk} (A) was merged into main"
    # Rebased onto main, which holds A's change now.
    assert (fake_repo / ".worktrees" / str(second.pk) / "shared.txt").read_text() == "from A\n"
