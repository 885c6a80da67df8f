"""A project's setup and check commands around a task's runs: the REAL CLI against the stand-in, in
real git worktrees, the commands in the real sandbox (bubblewrap)."""

from __future__ import annotations

import subprocess

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from chat.models import Turn
from tasks import services
from tasks.models import CheckRun, ProjectChecks, Task, TaskTransition
from tasks.selectors import task_for_page
from tests.task_helpers import settled, wait_for

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]

# Fails until result.txt says "fixed"; its output ends with what the stand-in reads as the next
# instruction (it takes what follows "Continue with:"), so the agent "fixes" what the check reports.
CHECK = (
    "cat .setup-done; echo; grep -qx fixed result.txt && echo all good || "
    '{ echo "result.txt is not fixed"; printf "Continue with:\\nwrite result.txt: fixed\\n"; exit 1; }'
)


async def _checks(user, **fields) -> ProjectChecks:
    return await ProjectChecks.objects.acreate(project="default", owner=user, **fields)


async def _runs(task: Task) -> list[CheckRun]:
    return [run async for run in CheckRun.objects.filter(task=task).order_by("id")]


async def test_a_failed_check_goes_back_to_the_agent_who_fixes_it_and_the_check_passes(repo, scheduler, user, rt):
    await _checks(user, setup_command="printf ready > .setup-done", check_command=CHECK, max_check_runs=3)
    task = await services.create_task(engine=rt, user=user, prompt="write result.txt: broken", title="Fix me")
    task = await settled(scheduler, task)

    assert task.status == Task.Status.COMPLETED, task.error
    worktree = repo / ".worktrees" / str(task.pk)
    assert (worktree / "result.txt").read_text() == "fixed\n"
    setup, failed, passed = await _runs(task)
    # The setup ran once, in the new worktree, before the agent's first run; the check reads what it made.
    assert (setup.kind, setup.passed, setup.run_number) == ("setup", True, 1)
    assert (failed.kind, failed.passed, failed.exit_code, failed.run_number, failed.sent_back) == (
        "check",
        False,
        1,
        1,
        True,
    )
    assert failed.output.startswith("ready\nresult.txt is not fixed\n")
    assert (passed.passed, passed.exit_code, passed.run_number, passed.sent_back) == (True, 0, 2, False)
    assert passed.output == "ready\nall good\n"
    # The failure went to the agent as its second run's message, with the check's output.
    prompts = [turn.prompt async for turn in Turn.objects.filter(session_id=task.session_id).order_by("id")]
    assert prompts[0] == "write result.txt: broken"
    assert prompts[1].startswith("The project's check command `")
    assert "failed with exit code 1 after your last run" in prompts[1]
    assert prompts[1].endswith("result.txt is not fixed\nContinue with:\nwrite result.txt: fixed\n")
    events = [(row.event, row.why) async for row in TaskTransition.objects.filter(task=task).order_by("id")]
    assert ("resume", "its check failed: sent back (run 1 of 3)") in events
    assert task.error == ""
    page = await _page(task, user)
    assert page.latest_check.pk == passed.pk


async def _page(task: Task, user) -> Task:
    return await sync_to_async(task_for_page)(task.pk, user=user)


async def test_after_the_most_runs_the_task_waits_for_the_person(repo, scheduler, user, rt):
    await _checks(user, check_command="echo still broken; exit 3", max_check_runs=2)
    task = await services.create_task(engine=rt, user=user, prompt="write a.txt: one", title="Never passes")
    task = await settled(scheduler, task)

    assert task.status == Task.Status.COMPLETED
    first, second = await _runs(task)
    assert (first.sent_back, second.sent_back) == (True, False)
    assert (second.exit_code, second.output) == (3, "still broken\n")
    assert task.error.startswith("The check failed after 2 run(s) in a row, the most this project sends back")
    assert await Turn.objects.filter(session_id=task.session_id).acount() == 2

    # A person's follow-up starts the count again: its run's failed check goes back once more.
    await services.resume(engine=rt, task_id=task.pk, message="write b.txt: two")
    task = await settled(scheduler, task)
    assert [run.sent_back for run in await _runs(task)] == [True, False, True, False]
    assert await Turn.objects.filter(session_id=task.session_id).acount() == 4


async def test_with_no_runs_allowed_a_failed_check_is_only_shown(repo, scheduler, user, rt):
    await _checks(user, check_command="echo nope >&2; exit 1")
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="write a.txt: one"))
    assert task.status == Task.Status.COMPLETED and task.can_merge
    (check,) = await _runs(task)
    assert (check.passed, check.output, check.sent_back) == (False, "nope\n", False)
    assert task.error.startswith("The check failed: its output is under Checks.")


async def test_a_failing_setup_stops_the_task_and_resume_runs_it_again(repo, scheduler, user, rt):
    checks = await _checks(user, setup_command="echo cannot install; exit 7", check_command="true")
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="write a.txt: one"))

    assert task.status == Task.Status.FAILED
    assert task.error.startswith("The project's setup command failed (exit code 7), so the agent did not start")
    assert "press Resume" in task.error
    (setup,) = await _runs(task)
    assert (setup.kind, setup.output) == ("setup", "cannot install\n")
    assert not await Turn.objects.filter(session_id=task.session_id).aexists()

    checks.setup_command = "echo installed"
    await checks.asave()
    await services.resume(engine=rt, task_id=task.pk)
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    assert [(run.kind, run.passed) for run in await _runs(task)] == [("setup", False), ("setup", True), ("check", True)]
    # The agent's first run got the task's own prompt, not "continue".
    assert [turn.prompt async for turn in Turn.objects.filter(session_id=task.session_id)] == ["write a.txt: one"]


async def test_the_commands_run_in_the_agents_sandbox(repo, scheduler, user, rt, tmp_path):
    secret = tmp_path / "secret-key.txt"
    secret.write_text("server secret")
    data = django_settings.DATA_DIR
    await _checks(
        user,
        check_command=f"id -u; cat {secret}; ls {data}; echo $DJANGO_SECRET_KEY; pwd",
    )
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="write a.txt: one"))
    (check,) = await _runs(task)
    lines = check.output.splitlines()
    assert lines[0] == "1000"  # the agents' user
    assert "server secret" not in check.output
    assert f"cat: {secret}: No such file or directory" in lines
    assert f"ls: cannot access '{data}': No such file or directory" in lines
    assert lines[-1] == task.worktree_path, check.output


async def test_a_check_that_runs_out_of_time_is_ended_and_says_so(repo, scheduler, user, rt):
    await _checks(user, check_command="echo started; sleep 60 & wait", timeout_seconds=1)
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="write a.txt: one"))
    (check,) = await _runs(task)
    assert (check.passed, check.timed_out, check.exit_code, check.result) == (False, True, None, "timed out")
    assert check.output == "started\n"
    assert task.error.startswith("The check timed out: its output is under Checks.")


async def test_pause_during_a_check_ends_it_and_keeps_no_result(fake_repo, user, rt):
    await _checks(user, check_command="touch checking; sleep 60; touch finished")
    task = await services.create_task(engine=rt, user=user, prompt="echo: done")
    worktree = fake_repo / ".worktrees" / str(task.pk)
    await wait_for(lambda: _exists(worktree / "checking"))
    paused = await services.pause(engine=rt, task_id=task.pk)
    assert paused.status == Task.Status.PAUSED and paused.reason == Task.Reason.USER
    assert await _runs(paused) == []
    assert not (worktree / "finished").exists()
    assert not [line for line in _processes() if "sleep 60; touch finished" in line]


async def _exists(path) -> bool:
    return path.exists()


def _processes() -> list[str]:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
