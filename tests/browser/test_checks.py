"""A member's checks in a real browser: set in Settings, run after a task's run in its sandbox, the
pass or fail on the board's card and the output on the task's page, both live."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_tasks import RUN_TIMEOUT, open_board, start_task

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

CHECK = 'test -f fixed.txt && echo "all 3 tests pass" || { echo "1 test failed: fixed.txt is missing"; exit 1; }'


def test_a_check_fails_on_the_card_and_page_then_passes_after_a_follow_up(live_app, page):
    open_board(live_app, page, "chuck")
    page.goto(live_app.base_url + "/settings/")
    page.get_by_role("link", name="Set your setup and check commands").click()
    page.get_by_label("Check command").fill(CHECK)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: they apply from the next run of a task in your own folder.")).to_be_visible()

    # A second tab keeps the board open: it follows the task's check live.
    board = page.context.new_page()
    board.goto(live_app.base_url + "/tasks/")
    expect(board.locator("body[data-ws=open]")).to_have_count(1)
    page.goto(live_app.base_url + "/tasks/")
    task_id = start_task(page, title="Checked task", prompt="write other.txt: not the fix")

    checks = page.get_by_role("region", name="Checks")
    expect(checks.get_by_text("check failed", exact=True)).to_be_visible(timeout=RUN_TIMEOUT)
    expect(checks.locator("pre")).to_have_text("1 test failed: fixed.txt is missing\n")
    expect(checks.get_by_text("exit code 1")).to_be_visible()
    card = board.locator(f"#task-{task_id}")
    expect(card.get_by_role("link", name="check failed")).to_be_visible()

    page.get_by_label("Follow-up instruction (runs in the task's worktree, same session)").fill("write fixed.txt: done")
    page.get_by_role("button", name="Send follow-up").click()
    expect(checks.get_by_text("check passed", exact=True)).to_be_visible(timeout=RUN_TIMEOUT)
    # Passed: its output is folded away, a click shows it.
    expect(checks.locator("pre")).to_be_hidden()
    checks.locator("summary").click()
    expect(checks.locator("pre")).to_have_text("all 3 tests pass\n")
    expect(card.get_by_role("link", name="check passed")).to_be_visible()
