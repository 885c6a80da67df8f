"""Reviewing a task's diff in a real browser: comment on two lines (one a range picked with
shift-click), send the review, and see which comments the follow-up run addressed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_tasks import RUN_TIMEOUT, open_board, start_task

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def test_comment_on_two_lines_and_send_the_review(live_app, page):
    open_board(live_app, page, "rita")
    start_task(page, title="Notes", prompt="write notes.txt: alpha\nbeta\ngamma\ndelta\nepsilon")
    expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
    diff = page.get_by_label("Diff")
    expect(diff.get_by_role("navigation", name="Files changed")).to_contain_text("notes.txt")

    diff.get_by_role("button", name="Comment on line 2 (new version)").click()
    form = diff.locator("form.comment-form")
    expect(form).to_be_visible()
    expect(form.locator(".comment-where")).to_have_text("Comment on notes.txt, line 2 (new version)")
    form.get_by_role("textbox").fill("Capitalise this one.")
    form.get_by_role("button", name="Add comment").click()
    expect(diff.locator("#review-notice")).to_contain_text("Comment on notes.txt, line 2 kept as a draft")

    diff.get_by_role("button", name="Comment on line 4 (new version)").click()
    diff.get_by_role("button", name="Comment on line 3 (new version)").click(modifiers=["Shift"])
    expect(form.locator(".comment-where")).to_have_text("Comment on notes.txt, lines 3–4 (new version)")
    form.get_by_role("textbox").fill("These two as well.")
    form.get_by_role("button", name="Add comment").click()
    expect(diff.get_by_role("button", name="Send review (2)")).to_be_visible()
    expect(diff.locator(".review-comment .badge")).to_have_text(["Draft", "Draft"])
    expect(diff.locator("td.picked")).to_have_count(0)  # the diff came back fresh: nothing picked

    diff.get_by_label("A note for the whole review (optional)").fill(
        "write notes.txt: alpha\nBETA\ngamma\ndelta\nepsilon"
    )
    diff.get_by_role("button", name="Send review (2)").click()
    expect(page.locator("#flash")).to_contain_text("Review sent: 2 comments in one follow-up.")
    # The follow-up runs; when it ends, the diff marks what it changed: line 2, not lines 3 and 4.
    expect(diff.locator(".review-comment .badge")).to_have_text(
        ["Addressed by the run", "Not changed by the run"], timeout=RUN_TIMEOUT
    )
    expect(page.locator("#task-status")).to_have_text("Completed")
    expect(page.locator("#turns")).to_contain_text("Review of your changes (2 comments)")

    # The runs' cost shows on the usage page, charted on the server (no script, no inline style).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    chart = page.get_by_role("img", name="Cost per day by project")
    expect(chart).to_be_visible()
    expect(chart.locator("rect")).to_have_count(1)
    expect(page.locator("#usage-by-project")).to_contain_text("default")
