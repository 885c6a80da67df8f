"""A project's setup and check commands around a task's runs (:mod:`tasks.checks_models`).

The commands are text an admin or a member typed, so they run exactly as the task's agent does:
inside its sandbox (the same folders, user, environment and network: the node's egress proxy),
in its worktree, as ``bash -lc <command>`` given as an argv (no shell of the server reads it),
with a time limit; the end of their output is kept. Setup runs once in a new worktree before the
agent's first run; the check after each run that ended normally, before the run's end is written,
and a failed check may go back to the agent as a follow-up (:func:`failed_check`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from chat.models import Session, Turn
from chat.projects import OWN
from chat.services import agents
from drivers.claude.oneshot import run_command
from members import roles
from runtime import Engine

from .. import live
from ..checks_models import OUTPUT_LIMIT, CheckRun, ProjectChecks
from ..models import Task
from .common import TaskRefused

# Of a failed check's output, the end that goes back to the agent in its follow-up.
SENT_BACK_CHARS = 20_000


async def checks_of(task: Task) -> ProjectChecks | None:
    """The commands of the task's project: a shared project's, or its creator's own folder's."""
    owner = task.created_by_id if task.project == OWN else None
    return await ProjectChecks.objects.filter(project=task.project, owner_id=owner).afirst()


async def _run(
    *, task: Task, session: Session, engine: Engine, checks: ProjectChecks, kind: CheckRun.Kind, run_number: int
) -> CheckRun:
    command = checks.setup_command if kind == CheckRun.Kind.SETUP else checks.check_command
    started = timezone.now()
    sandbox = agents.sandbox(session=session, egress=engine.agent_egress())
    env = agents.environment(session=session, extra={"CLAUDE_TASK_ID": str(task.pk)})
    result = await run_command(
        ["/bin/bash", "-lc", command],
        sandbox=sandbox,
        cwd=task.worktree_path,
        env=env,
        timeout=checks.timeout_seconds,
        keep=OUTPUT_LIMIT,
    )
    record = await CheckRun.objects.acreate(
        task=task,
        kind=kind,
        run_number=run_number,
        command=command,
        passed=result.code == 0,
        exit_code=result.code,
        timed_out=result.timed_out,
        output=result.output,
        truncated=result.truncated,
        started_at=started,
        finished_at=timezone.now(),
    )
    await live.task_changed(task.pk)
    return record


async def _runs_so_far(session: Session) -> int:
    return await Turn.objects.filter(session=session).acount()


async def run_setup(*, task: Task, session: Session, engine: Engine, new_worktree: bool) -> CheckRun | None:
    """The project's setup command in the task's worktree, before its agent runs: in a worktree just
    made, and again until it has passed once (a failed setup is run again by Resume). None: there is
    none to run."""
    checks = await checks_of(task)
    if checks is None or not checks.setup_command.strip():
        return None
    if not new_worktree and await CheckRun.objects.filter(task=task, kind=CheckRun.Kind.SETUP, passed=True).aexists():
        return None
    return await _run(
        task=task,
        session=session,
        engine=engine,
        checks=checks,
        kind=CheckRun.Kind.SETUP,
        run_number=await _runs_so_far(session) + 1,
    )


def setup_failed(setup: CheckRun) -> str:
    """What a task whose setup failed says on its page."""
    how = "ran out of time" if setup.timed_out else f"failed (exit code {setup.exit_code})"
    return (
        f"The project's setup command {how}, so the agent did not start; its output is under Checks. Fix the "
        "command (Settings → Checks of your own folder, or an admin under Admin → Project checks) or what it "
        "needs, then press Resume: the setup runs again first."
    )


async def run_check(*, task: Task, turn: Turn, engine: Engine) -> CheckRun | None:
    """The project's check command after a run of the task that ended normally (None: it has none)."""
    checks = await checks_of(task)
    if checks is None or not checks.check_command.strip():
        return None
    session = await Session.objects.aget(pk=turn.session_id)
    return await _run(
        task=task,
        session=session,
        engine=engine,
        checks=checks,
        kind=CheckRun.Kind.CHECK,
        run_number=await _runs_so_far(session),
    )


@dataclass(frozen=True)
class AfterFailure:
    """What follows a failed check: a follow-up for the agent (then ``why``), or a note for the person."""

    follow_up: str = ""
    why: str = ""
    note: str = ""


async def failed_check(*, task: Task, check: CheckRun) -> AfterFailure:
    """Send the failure back to the agent while the project allows more runs (``max_check_runs``),
    counting the runs checked in a row since a person last sent the task on; else say so."""
    checks = await checks_of(task)
    limit = checks.max_check_runs if checks is not None else 0
    if limit == 0:
        return AfterFailure(
            note=f"The check {check.result}: its output is under Checks. Send a follow-up to fix it, or merge anyway."
        )
    in_a_row = 1
    async for earlier in CheckRun.objects.filter(task=task, kind=CheckRun.Kind.CHECK, pk__lt=check.pk).order_by("-pk"):
        if not earlier.sent_back:
            break
        in_a_row += 1
    if in_a_row >= limit:
        return AfterFailure(
            note=(
                f"The check {check.result} after {in_a_row} run(s) in a row, the most this project sends back to the "
                "agent: its output is under Checks. Send a follow-up, or merge anyway."
            )
        )
    await CheckRun.objects.filter(pk=check.pk).aupdate(sent_back=True)
    return AfterFailure(
        follow_up=follow_up(check), why=f"its check {check.result}: sent back (run {in_a_row} of {limit})"
    )


def follow_up(check: CheckRun) -> str:
    """The follow-up that sends a failed check back to the agent: what happened, then its output (last)."""
    output = check.output
    cut = check.truncated or len(output) > SENT_BACK_CHARS
    output = output[-SENT_BACK_CHARS:]
    how = "ran out of time" if check.timed_out else f"failed with exit code {check.exit_code}"
    return (
        f"The project's check command `{check.command.strip()}` {how} after your last run. Fix what it reports; "
        "it runs again after your next run.\n\n"
        f"Its output{' (its end)' if cut else ''}:\n\n{output}"
    )


class Commands(TypedDict):
    setup_command: str
    check_command: str
    max_check_runs: int
    timeout_seconds: int


def own_checks(*, user: AbstractBaseUser) -> ProjectChecks:
    """The commands of the member's own folder (unsaved, empty, if they set none)."""
    found = ProjectChecks.objects.filter(project=OWN, owner_id=user.pk).first()
    return found or ProjectChecks(project=OWN, owner_id=user.pk)


async def save_own_checks(*, user: AbstractBaseUser, commands: Commands) -> ProjectChecks:
    """Set the commands of the member's own folder (validated at the boundary: the settings form).
    They take effect from the next run of a task there."""
    if not await sync_to_async(roles.may_run)(user):
        raise TaskRefused("Your role is viewer: you run nothing, so you have no checks to set. Ask an admin.")
    checks, _ = await ProjectChecks.objects.aupdate_or_create(project=OWN, owner_id=user.pk, defaults=dict(commands))
    return checks
