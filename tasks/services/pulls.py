"""A completed task as a pull request: push its branch, open the pull request, follow its state.

**Open pull request** (:data:`~tasks.models.Action.PULL_REQUEST`, for a completed task of a
project with a remote, :mod:`tasks.remotes`) commits what is left in the worktree, pushes the
task's branch to the project's remote (:func:`drivers.git.push`) and opens a pull request of it
into the task's base branch on the forge (:mod:`drivers.forge`), titled with the task's title
and described by its prompt and a summary of its turns. Pressed again, it pushes the new
commits (a follow-up's) to the same pull request, which is only asked whether it is still
open; one already open for the branch (opened by anyone) is linked.

The state (open, merged, closed) is asked of the forge when the task's page is opened (at most
every :data:`REFRESH_EVERY` seconds) or on its Refresh button, never when the board renders.
Once the forge has merged it, the task is merged: its worktree and local branch are removed, as
after a local Merge, unless it changed after its last push. Discard closes an open one.

Every refusal is a :class:`TaskRefused` whose text says what to do.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from chat.models import Event, Turn
from drivers import claims, forge, git
from runtime import Engine

from .. import remotes
from ..models import ACTIONS, Action, Task, TaskEvent
from .common import TaskRefused, get_task
from .conflicts import unblock_later
from .places import remove_worktree_and_branch, repo_of, store_for, worktree_of
from .state import TaskFields, TransitionRefused, require, transition, update

log = logging.getLogger(__name__)

PUSH_TIMEOUT = 300.0
REFRESH_EVERY = timedelta(seconds=10)
BODY_LIMIT = 60_000  # GitHub takes 65,536 characters
PROMPT_SHOWN = 4_000
TURNS_SHOWN = 20
ASKED_SHOWN, ANSWERED_SHOWN = 300, 600
FILES_SHOWN = 50
API_VARIABLES = {forge.GITHUB: "CLAUDE_GITHUB_API_URL", forge.GITLAB: "CLAUDE_GITLAB_API_URL"}
TOKEN_NEEDS = {
    forge.GITHUB: "a fine-grained token that may read and write its pull requests and contents, or a classic token "
    "with the repo scope",
    forge.GITLAB: "a token with the api scope, and write_repository to push over https",
}


# ---------------------------------------------------------------------------------------
# Open


async def open_pull_request(*, task_id: int) -> Task:
    """Push the task's branch and open (or update) its pull request."""
    task = await get_task(task_id)
    target = await sync_to_async(remotes.target_for)(task.project, task.repo_path)
    if target is None and Action.PULL_REQUEST in ACTIONS[Task.Status(task.status)]:
        raise TaskRefused(_no_remote(task))
    require(task, Action.PULL_REQUEST)
    assert target is not None
    if target.repository is None:
        raise TaskRefused(target.problem)
    repository = target.repository
    token = token_of(task, repository, doing="open a pull request")
    repo = repo_of(task)
    push_url = await git.remote_url(repo, target.remote, push=True)
    if push_url is None:
        raise TaskRefused(
            f"The repository of project {task.project!r} has no git remote {target.remote!r}. "
            f"Add it with `git remote add {target.remote} <url>` in {task.repo_path}."
        )
    if task.worktree_exists:
        await git.commit_all(worktree_of(task), f"{task.title} (last changes)\n\nTask #{task.pk}")
    head = await git.rev(repo, task.branch)
    try:
        # A branch pushed for an open pull request may be replaced (a rebased task) only if the
        # remote's is still what was pushed; anything else only as a new branch or a fast-forward.
        await git.push(
            repo,
            target.remote,
            task.branch,
            expect=task.pr_head if task.pr_state == Task.PullState.OPEN and task.pr_head else None,
            config=forge.git_auth_config(repository, token),
            timeout=PUSH_TIMEOUT,
        )
    except git.GitError as exc:
        raise TaskRefused(_push_refused(task, target.remote, push_url, repository, exc, token)) from exc
    if task.pr_state == Task.PullState.OPEN and task.pr_number is not None and task.pr_forge == repository.forge:
        # Its pull request is open: the push updated it, and nothing new is opened (unless the
        # forge says it was closed or merged meanwhile).
        updated = await _still_open(task, repository, token, head)
        if updated is not None:
            return updated
    title, body = await describe(task)
    try:
        opened = await asyncio.to_thread(
            forge.open_pull_request,
            repository,
            token,
            head=task.branch,
            base=task.base_branch,
            title=title,
            body=body,
            timeout=settings.CLAUDE_FORGE_TIMEOUT,
        )
    except forge.ForgeError as exc:
        await update(task_id=task.pk, announce=False, pr_head=head)
        raise TaskRefused(
            forge_failed(task, repository, exc, token) + f" The branch {task.branch} was pushed to "
            f"{target.remote}; press Open pull request again once that is fixed."
        ) from exc
    pull = opened.pull_request
    if opened.existed:
        log.info("task %s: %s %s was already open for %s; linked it", task.pk, repository.name, pull.url, task.branch)
    await update(
        task_id=task.pk,
        pr_forge=repository.forge,
        pr_repository=repository.path,
        pr_number=pull.number,
        pr_url=pull.url,
        pr_state=pull.state,
        pr_head=head,
        pr_checked_at=timezone.now(),
    )
    return await get_task(task.pk)


async def on_forge[T](
    task: Task, repository: forge.Repository, token: str, call: Callable[..., T], *args: Any, doing: str
) -> T:
    """``call(repository, token, *args)`` in a thread, with the forge's timeout; a refusal says
    what it answered and what to do, after ``doing`` ("Could not refresh pull request #1")."""
    try:
        return await asyncio.to_thread(call, repository, token, *args, timeout=settings.CLAUDE_FORGE_TIMEOUT)
    except forge.ForgeError as exc:
        raise TaskRefused(f"{doing}: {forge_failed(task, repository, exc, token)}") from exc


async def _still_open(task: Task, repository: forge.Repository, token: str, head: str) -> Task | None:
    """The task once its open pull request took the push (None: the forge closed or merged it)."""
    try:
        pull = await on_forge(
            task,
            repository,
            token,
            forge.get_pull_request,
            task.pr_number or 0,
            doing=f"The branch {task.branch} was pushed to pull request {task.pr_label}, but could not ask about it "
            "(press Refresh once this is fixed)",
        )
    except TaskRefused:
        await update(task_id=task.pk, announce=False, pr_head=head)
        raise
    if pull.state != forge.State.OPEN:
        return None
    await update(task_id=task.pk, pr_url=pull.url, pr_state=pull.state, pr_head=head, pr_checked_at=timezone.now())
    return await get_task(task.pk)


def _no_remote(task: Task) -> str:
    if task.project == remotes.OWN:
        return (
            f"Task #{task.pk} works in its creator's own folder, which has no remote: only shared projects "
            "(CLAUDE_PROJECTS) open pull requests. Merge it here instead."
        )
    return (
        f"Project {task.project!r} has no remote to open pull requests on. An admin can name one with "
        f'CLAUDE_PROJECT_REMOTES="{task.project}=origin:github:OWNER/REPO" (or origin:gitlab:GROUP/PROJECT), or '
        f"give its repository an origin on GitHub or GitLab, and set {remotes.token_variable(task.project)}. "
        "Merge works without one."
    )


def token_of(task: Task, repository: forge.Repository, *, doing: str) -> str:
    token = remotes.token_for(task.project)
    if not token:
        raise TaskRefused(
            f"There is no {repository.name} token for project {task.project!r}, so the app cannot {doing}. Set "
            f"{remotes.token_variable(task.project)} in the server's environment to {TOKEN_NEEDS[repository.forge]} "
            f"for {repository.path}, and restart the server."
        )
    return token


def _redacted(text: str, token: str) -> str:
    """Without credentials: a URL's user and password, and the token."""
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)
    return text.replace(token, "***") if token else text


def _push_refused(
    task: Task, remote: str, url: str, repository: forge.Repository, exc: git.GitError, token: str
) -> str:
    # git's own words, without its "To <url>" line.
    lines = [line.strip() for line in (exc.err or exc.out or str(exc)).splitlines()]
    said = " ".join(line for line in lines if line and not line.startswith("To "))
    if url.startswith(repository.web):
        how = (
            f"It sent the token in {remotes.token_variable(task.project)}: check that it may push to "
            f"{repository.path}; it needs to be {TOKEN_NEEDS[repository.forge]}."
        )
    else:
        how = (
            "It used the remote's own credentials (the server user's SSH key or git's credential helper): "
            "check that they may push there."
        )
    return _redacted(
        f"git could not push {task.branch} to {remote} ({url}): {said[-1500:]}. Nothing was opened on "
        f"{repository.name}. {how}",
        token,
    )


def forge_failed(task: Task, repository: forge.Repository, exc: forge.ForgeError, token: str) -> str:
    variable = remotes.token_variable(task.project)
    if isinstance(exc, forge.TokenRejected):
        text = (
            f"{repository.name} refused the token in {variable}: {exc}. Set it to {TOKEN_NEEDS[repository.forge]} "
            f"for {repository.path}, and restart the server."
        )
    elif isinstance(exc, forge.NotFound):
        text = (
            f"{repository.name} has no repository {repository.path}, or the token in {variable} may not see it: "
            f"{exc}. Check CLAUDE_PROJECT_REMOTES and the token's access."
        )
    elif isinstance(exc, forge.Unreachable):
        text = (
            f"{exc}. Check the server's network (behind a proxy: HTTPS_PROXY) and "
            f"{API_VARIABLES[repository.forge]} ({repository.api}), then try again."
        )
    else:
        text = (
            f"{repository.name} refused: {exc}. Check that {task.base_branch} exists on {repository.path} and "
            f"that {task.branch} has commits it lacks."
        )
    return _redacted(text, token)


# ---------------------------------------------------------------------------------------
# Title and description


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else text


async def describe(task: Task) -> tuple[str, str]:
    """The pull request's title (the task's) and description: the prompt, then the files, cost,
    commits and turns (prompts and answers shortened)."""
    commits = await git.log(repo_of(task), task.base_branch, task.branch)
    return await sync_to_async(_describe)(task, commits)


def _describe(task: Task, commits: list[str]) -> tuple[str, str]:
    turns = list(Turn.objects.filter(session_id=task.session_id).order_by("id")) if task.session_id else []
    answers: dict[int, list[str]] = {}
    for event in Event.objects.filter(turn__in=turns, kind=Event.Kind.TEXT).order_by("id"):
        answers.setdefault(event.turn_id, []).append(event.text)
    prompt = task.prompt if len(task.prompt) <= PROMPT_SHOWN else task.prompt[:PROMPT_SHOWN] + "\n\n… (prompt cut)"
    files = task.files_changed
    listed = ", ".join(_code(name) for name in files[:FILES_SHOWN]) + (
        f" and {len(files) - FILES_SHOWN} more" if len(files) > FILES_SHOWN else ""
    )
    lines = [
        prompt.strip(),
        "",
        "---",
        "",
        f"Opened by Claude Code chat from task #{task.pk} ({_code(task.project)}): branch {_code(task.branch)} "
        f"onto {_code(task.base_branch)}.",
        "",
        f"**Files changed ({len(files)}):** {listed or 'none'}  ",
        f"**Usage:** {task.tokens:,} tokens, ${task.cost_usd:.4f}, {len(turns)} turn{'s' if len(turns) != 1 else ''}",
    ]
    if commits:
        lines += ["", "**Commits:**", *(f"- {_short(line, 200)}" for line in commits[:50])]
    if turns:
        shown = turns[-TURNS_SHOWN:]
        lines += ["", f"<details><summary>Turns ({len(turns)})</summary>", ""]
        if len(turns) > len(shown):
            lines += [f"(the last {len(shown)})", ""]
        for number, turn in enumerate(shown, len(turns) - len(shown) + 1):
            answer = "\n\n".join(answers.get(turn.pk, [])) or f"({turn.get_status_display().lower()}, no answer)"
            lines += [
                f"{number}. **Asked:** {_short(turn.prompt, ASKED_SHOWN)}  ",
                f"   **Answered:** {_short(answer, ANSWERED_SHOWN)}",
                "",
            ]
        lines += ["</details>"]
    body = "\n".join(lines)
    if len(body) > BODY_LIMIT:
        body = body[:BODY_LIMIT] + "\n\n… (cut)"
    return task.title, body


# ---------------------------------------------------------------------------------------
# State


def repository_of(task: Task) -> forge.Repository:
    api = settings.CLAUDE_GITHUB_API_URL if task.pr_forge == forge.GITHUB else settings.CLAUDE_GITLAB_API_URL
    return forge.Repository(forge=task.pr_forge, path=task.pr_repository, api=api)


async def refresh_pull_request(*, engine: Engine, task_id: int, force: bool = False) -> Task:
    """Ask the forge for the state of the task's pull request (unless asked within
    :data:`REFRESH_EVERY`, or ``force``); once merged there, the task is merged."""
    task = await get_task(task_id)
    if task.pr_number is None or task.pr_forge not in forge.FORGES or task.pr_state == Task.PullState.MERGED:
        return task
    if not force and task.pr_checked_at and timezone.now() - task.pr_checked_at < REFRESH_EVERY:
        return task
    repository = repository_of(task)
    token = token_of(task, repository, doing=f"ask {repository.name} about {task.pr_label}")
    pull = await on_forge(
        task,
        repository,
        token,
        forge.get_pull_request,
        task.pr_number,
        doing=f"Could not refresh pull request {task.pr_label}",
    )
    changed = pull.state != task.pr_state
    await update(task_id=task.pk, announce=changed, pr_state=pull.state, pr_url=pull.url, pr_checked_at=timezone.now())
    if changed and pull.state == forge.State.MERGED and task.status == Task.Status.COMPLETED:
        await _merged_on_forge(task, engine=engine)
    return await get_task(task.pk)


async def _merged_on_forge(task: Task, *, engine: Engine) -> None:
    """The forge merged the task's pull request: finish the task as a local Merge does, if nothing
    changed in it since its last push (else say so and leave it as it is)."""
    repo = repo_of(task)
    pending = await git.status(worktree_of(task)) if task.worktree_exists else []
    head = await git.rev(repo, task.branch) if await git.branch_exists(repo, task.branch) else ""
    if pending or head != task.pr_head:
        await update(
            task_id=task.pk,
            error=(
                f"Pull request {task.pr_label} was merged on {task.pr_forge_name}, but this task changed after its last push "
                "(commits or files that are not in it). Open another pull request for them, Merge them here, or Discard "
                "them."
            ),
        )
        return
    try:
        # Two pages refreshing at once: only one finishes the task.
        task = await transition(
            task_id=task.pk,
            event=TaskEvent.MERGE,
            why=f"pull request {task.pr_label} merged on {task.pr_forge_name}",
            fields=TaskFields(
                merged_at=timezone.now(),
                error=(
                    f"Merged through pull request {task.pr_label} on {task.pr_forge_name} into {task.base_branch} "
                    "there; the worktree and local branch were removed (pull the base branch to have it here)."
                ),
            ),
        )
    except TransitionRefused:
        return
    await remove_worktree_and_branch(task)
    await sync_to_async(claims.release)(store_for(task), task=task.pk)
    unblock_later(task, engine=engine)


async def close_for_discard(task: Task) -> str:
    """Close the task's open pull request (Discard): a sentence saying what became of it."""
    if task.pr_number is None or task.pr_state != Task.PullState.OPEN or task.pr_forge not in forge.FORGES:
        return ""
    repository = repository_of(task)
    where = f"pull request {task.pr_label} on {repository.name} ({task.pr_url})"
    token = remotes.token_for(task.project)
    if not token:
        return (
            f" Its {where} is still open: there is no token in {remotes.token_variable(task.project)} to close "
            "it with. Close it there."
        )
    timeout = settings.CLAUDE_FORGE_TIMEOUT
    try:
        pull = await asyncio.to_thread(forge.get_pull_request, repository, token, task.pr_number, timeout=timeout)
        if pull.state == forge.State.OPEN:
            pull = await asyncio.to_thread(forge.close_pull_request, repository, token, task.pr_number, timeout=timeout)
    except forge.ForgeError as exc:
        return f" Its {where} could not be closed ({_redacted(str(exc), token)}): close it there."
    await update(task_id=task.pk, announce=False, pr_state=pull.state, pr_checked_at=timezone.now())
    return f" Its {where} was {'closed' if pull.state == forge.State.CLOSED else pull.state.value + ' already'}."
