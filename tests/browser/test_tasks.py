"""A person's path through the tasks board in a real browser, against the real server, CLI and git."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.test_chat import log_in

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

# The server, the CLI, git and chromium share two loaded cores: a task's run can take a while.
RUN_TIMEOUT = 30_000


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def branches(repo: Path, name: str) -> list[str]:
    return git(repo, "branch", "--list", "--format=%(refname:short)", name).split()


def open_board(live_app, page: Page, username: str) -> Path:
    """Log in and follow the Tasks link of the navigation the chat list and the board share;
    returns the person's own folder, their tasks' default repository."""
    password = f"pw-{username}-123"
    user_id = live_app.create_user(username=username, password=password)
    log_in(page, live_app.base_url, username, password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    return live_app.own_folder(user_id)


def start_task(page: Page, *, title: str, prompt: str) -> int:
    """From the board: New task, fill in the form, start it; returns the id from the task's page."""
    page.get_by_role("link", name="New task").click()
    prompt_box = page.get_by_label("What should Claude Code do?")
    expect(prompt_box).to_be_in_viewport()
    prompt_box.fill(prompt)
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Start task").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+/$"))
    task_id = int(re.search(r"/tasks/(\d+)/$", page.url).group(1))
    expect(page.get_by_role("heading", name=f"#{task_id} {title}", exact=True)).to_be_visible()
    # Actions before the websocket is open would miss the live updates they cause.
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    return task_id


def accept_confirmations(page: Page) -> list[str]:
    """Merge, Terminate and Discard ask first and the person says OK; returns what was asked."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_a_task_runs_shows_its_log_and_diff_and_is_merged(live_app, page):
    repo = open_board(live_app, page, "tess")
    # A second tab keeps the board open: it follows the task live and is never reloaded.
    board = page.context.new_page()
    board.goto(live_app.base_url + "/tasks/")
    expect(board.locator("body[data-ws=open]")).to_have_count(1)
    board.evaluate("window.neverReloaded = true")

    # Markup in a title is text, on the pages and in the merge commit.
    title = 'Say "hello" <b>now</b>'
    task_id = start_task(page, title=title, prompt="write hello.txt: hello from a task")
    card = f"#{task_id} {title}"
    completed = board.get_by_role("region", name="Completed: review and merge")
    expect(completed.get_by_role("link", name=card, exact=True)).to_be_visible(timeout=RUN_TIMEOUT)
    expect(completed.get_by_text("Completed", exact=True)).to_be_visible()
    assert board.evaluate("window.neverReloaded") is True

    status = page.locator("#task-status")
    expect(status).to_have_text("Completed", timeout=RUN_TIMEOUT)
    expect(page.locator("#task-head b")).to_have_count(0)
    tool = page.locator("#turns .event.tool_use")
    expect(tool).to_contain_text("Write")
    expect(tool).to_contain_text("hello.txt")
    expect(page.locator("#turns")).to_contain_text("File created successfully")
    # The diff was empty when the page opened; it follows the task without a reload.
    diff = page.get_by_label("Diff")
    expect(diff).to_contain_text("hello.txt")
    expect(diff).to_contain_text("+hello from a task")
    added = diff.locator(".diff-file ins.line.add")
    expect(added).to_have_text("+hello from a task")
    assert added.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(230, 255, 236)"  # green

    asked = accept_confirmations(page)
    page.get_by_role("button", name="Merge").click()
    expect(status).to_have_text("Merged", timeout=RUN_TIMEOUT)
    expect(page.get_by_role("alert")).to_have_text(f"Task #{task_id}: merged.")
    assert asked == [f"Merge task #{task_id} into main? Its worktree and branch are removed afterwards."]
    expect(page.get_by_role("button", name="Merge")).to_have_count(0)
    merged = board.get_by_role("region", name="Merged / cancelled")
    expect(merged.get_by_role("link", name=card, exact=True)).to_be_visible()
    # The merged work can still be reviewed: the diff is now the merge commit's.
    expect(diff).to_contain_text("Merged: 1 file changed")
    expect(diff.locator(".diff-file summary")).to_contain_text("hello.txt")
    expect(added).to_have_text("+hello from a task")

    assert git(repo, "show", "main:hello.txt") == "hello from a task\n"
    assert git(repo, "log", "-1", "--format=%s", "main") == f"Merge task #{task_id}: {title}\n"
    assert not (repo / ".worktrees" / str(task_id)).exists()
    assert branches(repo, f"auto-claude/{task_id}") == []


def test_a_running_task_is_paused_resumed_and_discarded(live_app, page):
    repo = open_board(live_app, page, "pia")
    task_id = start_task(page, title="Take your time", prompt="slow 20")
    worktree, branch = repo / ".worktrees" / str(task_id), f"auto-claude/{task_id}"
    status = page.locator("#task-status")

    expect(page.locator("#turns .event.text")).to_contain_text("word3", timeout=RUN_TIMEOUT)
    expect(status).to_have_text("Running")
    page.get_by_role("button", name="Pause").click()
    expect(status).to_have_text("Paused by a person", timeout=RUN_TIMEOUT)
    expect(page.get_by_role("alert")).to_have_text(f"Task #{task_id}: paused by a person.")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect(page.locator("#turns .event.text")).not_to_contain_text("(end of slow answer)")
    # What the stopped run used is counted (it showed 0 tokens before).
    expect(page.locator(".task-facts")).to_contain_text(re.compile(r"Usage\s*[1-9]\d* tokens"))
    # Pausing keeps the worktree and the branch for the resumed session.
    assert worktree.is_dir()
    assert branches(repo, branch) == [branch]

    page.get_by_role("button", name="Resume").click()
    # A slow answer changes no file: nothing to merge.
    expect(status).to_have_text("Completed: nothing changed", timeout=RUN_TIMEOUT)
    expect(page.get_by_role("button", name="Merge")).to_have_count(0)
    expect(page.locator("#turns .turn")).to_have_count(2)
    expect(page.locator("#turns .turn").nth(1)).to_contain_text("Continue where you left off.")

    asked = accept_confirmations(page)
    page.get_by_role("button", name="Discard").click()
    expect(status).to_have_text("Cancelled", timeout=RUN_TIMEOUT)
    expect(page.get_by_text("Discarded: the worktree and branch were removed without merging.")).to_be_visible()
    assert asked == [f"Discard task #{task_id}? Its worktree and branch {branch} are deleted without merging."]
    expect(page.get_by_role("button", name="Merge")).to_have_count(0)
    expect(page.get_by_role("button", name="Discard")).to_have_count(0)
    assert not worktree.exists()
    assert branches(repo, branch) == []


def test_a_terminated_task_keeps_its_branch_until_it_is_discarded(live_app, page):
    repo = open_board(live_app, page, "tom")
    task_id = start_task(page, title="Never mind", prompt="slow 20")
    worktree, branch = repo / ".worktrees" / str(task_id), f"auto-claude/{task_id}"
    status, facts = page.locator("#task-status"), page.locator(".task-facts")

    expect(page.locator("#turns .event.text")).to_contain_text("word3", timeout=RUN_TIMEOUT)
    asked = accept_confirmations(page)
    page.get_by_role("button", name="Terminate").click()
    expect(status).to_have_text("Cancelled", timeout=RUN_TIMEOUT)
    assert asked == [f"Terminate task #{task_id}? Its work so far stays on its branch."]
    expect(page.locator("#turns .event.text")).not_to_contain_text("(end of slow answer)")
    expect(page.get_by_role("button", name="Terminate")).to_have_count(0)
    expect(page.get_by_role("button", name="Merge")).to_have_count(0)
    expect(facts).not_to_contain_text("(removed)")
    assert worktree.is_dir()
    assert branches(repo, branch) == [branch]

    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_text("Discarded: the worktree and branch were removed without merging.")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    expect(status).to_have_text("Cancelled")
    expect(facts).to_contain_text(f".worktrees/{task_id} (removed)")
    expect(page.get_by_role("button", name="Discard")).to_have_count(0)
    assert not worktree.exists()
    assert branches(repo, branch) == []


def test_the_new_task_form_states_the_skip_permissions_risk(live_app, page):
    open_board(live_app, page, "rik")
    page.get_by_role("link", name="New task").click()
    skip = page.get_by_role("checkbox", name="Skip permissions (--dangerously-skip-permissions)")
    expect(skip).not_to_be_checked()
    risk = page.get_by_text(
        "With skip permissions the agent runs any shell command and changes any file without asking"
    )
    expect(risk).to_be_visible()
    expect(risk).to_contain_text("inside its sandbox")


def test_a_member_who_may_not_act_on_a_task_sees_no_buttons(live_app, page, new_context):
    """In a shared project everyone sees the task; only its creator (and staff) see its buttons."""
    live_app.manage(
        "shell",
        "-c",
        "from chat.models import ProjectAccess; ProjectAccess.objects.get_or_create(project='team', everyone=True)",
    )
    open_board(live_app, page, "cora")
    page.get_by_role("link", name="New task").click()
    page.get_by_label("What should Claude Code do?").fill("write team.txt: from cora")
    page.get_by_label("Title").fill("Cora's change")
    page.get_by_label("Project").select_option("team")
    page.get_by_role("button", name="Start task").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+/$"))
    task_url = page.url

    other = new_context().new_page()
    password = "pw-otto-123"
    live_app.create_user(username="otto", password=password)
    log_in(other, live_app.base_url, "otto", password)
    other.goto(task_url)
    expect(other.locator("body[data-ws=open]")).to_have_count(1)
    # Otto's page follows the task live (its head is rendered for him) and never offers him a button.
    expect(other.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
    head = other.locator("#task-head")
    for name in ("Merge", "Discard", "Pause", "Terminate", "Send follow-up", "Open pull request"):
        expect(head.get_by_role("button", name=name)).to_have_count(0)
    expect(other.get_by_label("Follow-up instruction (runs in the task's worktree, same session)")).to_have_count(0)
    expect(head).to_contain_text("Only cora (or an admin) can act on this task.")
    card = other.context.new_page()
    card.goto(live_app.base_url + "/tasks/")
    completed = card.get_by_role("region", name="Completed: review and merge")
    expect(completed.get_by_role("link", name="Cora's change")).to_be_visible()
    expect(completed.get_by_role("button")).to_have_count(0)

    # Cora, who created it, has them, on her page and on the board.
    expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
    expect(page.locator("#task-head").get_by_role("button", name="Merge")).to_be_visible()
    expect(page.locator("#task-head").get_by_role("button", name="Discard")).to_be_visible()
    # Every fragment the run sent to the task's pages found its place there (the page fixture fails
    # the test on any htmx error).
    other.context.close()


def test_a_task_whose_only_call_was_denied_says_so_and_offers_nothing_to_merge(live_app, page):
    open_board(live_app, page, "dina")
    task_id = start_task(page, title="Run a script", prompt='run: python3 -c \'open("made.txt", "w")\'')
    prompt = page.locator("#turns .event.permission")
    expect(prompt).to_contain_text("Claude Code asks to use Bash", timeout=RUN_TIMEOUT)
    expect(page.locator("#task-head").get_by_role("link", name="asks for permission")).to_be_visible()
    prompt.get_by_role("button", name="Deny").click()
    expect(prompt).to_contain_text("Denied by dina.")

    status = page.locator("#task-status")
    expect(status).to_have_text("Completed: nothing changed", timeout=RUN_TIMEOUT)
    expect(page.locator("#task-head")).to_contain_text(
        "This run changed no file: its call to Bash was denied, so there is nothing to merge."
    )
    expect(page.locator("#task-head").get_by_role("button", name="Merge")).to_have_count(0)
    expect(page.locator("#task-head").get_by_role("button", name="Discard")).to_be_visible()
    expect(page.locator(".task-facts")).to_contain_text(re.compile(r"Files changed\s*none(?! yet)"))
    board = page.context.new_page()
    board.goto(live_app.base_url + "/tasks/")
    card = board.locator(f"#task-{task_id}")
    expect(card.locator(".badge").first).to_have_text("Completed: nothing changed")
    expect(card.get_by_role("button", name="Merge")).to_have_count(0)
