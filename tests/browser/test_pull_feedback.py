"""A pull request's feedback in a real browser: the real server opens the pull request on the local
forge stand-in (tests/forge_standin.py), shows what reviewers and CI said there after Refresh, and
"Send to the agent" runs the real CLI once; its commit lands on the same pull request."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat import log_in
from tests.browser.test_tasks import RUN_TIMEOUT, accept_confirmations, git
from tests.conftest import serving
from tests.forge_standin import ForgeStandIn
from tests.task_helpers import bare_remote

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


@pytest.fixture
def forge():
    server = ForgeStandIn().start()
    yield server
    server.stop()
    assert not server.violations, server.violations


def test_feedback_is_shown_and_sent_to_the_agent_from_the_page(stub_api, tmp_path_factory, forge, page):
    data = tmp_path_factory.mktemp("feedback-app")
    env = {
        "CLAUDE_PROJECT_REMOTES": "team=origin:github:acme/widgets",
        "CLAUDE_GITHUB_API_URL": forge.github_api,
        "CLAUDE_FORGE_TOKEN_TEAM": forge.token,
    }
    with serving(stub_api, data, env=env) as app:
        bare = bare_remote(tmp_path_factory.mktemp("forge") / "widgets.git", data / "team")
        forge.add_repository("github", "acme/widgets", bare)
        app.create_user(username="rita", password="pw-rita-123", staff=True)
        log_in(page, app.base_url, "rita", "pw-rita-123")
        page.goto(app.base_url + "/tasks/")
        page.get_by_role("link", name="New task").click()
        page.get_by_label("Project").select_option("team")
        page.get_by_label("What should Claude Code do?").fill("write hello.txt: hi")
        page.get_by_label("Title").fill("Greet")
        page.get_by_role("button", name="Start task").click()
        expect(page).to_have_url(re.compile(r"/tasks/\d+/$"))
        task_id = int(re.search(r"/tasks/(\d+)/$", page.url).group(1))
        expect(page.locator("body[data-ws=open]")).to_have_count(1)
        expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
        accept_confirmations(page)
        page.get_by_role("button", name="Open pull request").click()
        expect(page.locator("#task-pr")).to_contain_text("#1 open", timeout=RUN_TIMEOUT)

        forge.comment("github", "acme/widgets", 1, author="ada", body="Greet the world.", file="hello.txt", line=1)
        forge.comment("github", "acme/widgets", 1, author="mallory", body="<b>bold</b> <script>alert(1)</script>")
        forge.fail_check("github", "acme/widgets", 1, name="unit tests", summary="test_greeting failed")
        page.locator("#task-pr").get_by_role("button", name="Refresh").click()

        feedback = page.get_by_role("region", name="Pull request feedback")
        expect(feedback.get_by_role("listitem")).to_have_count(3)
        expect(feedback).to_contain_text("hello.txt, line 1 · ada")
        expect(feedback).to_contain_text("<b>bold</b> <script>alert(1)</script>")  # as text
        expect(feedback.locator("b, script")).to_have_count(0)
        expect(feedback.get_by_role("link", name="Details on GitHub")).to_have_attribute(
            "href", "https://github.com/acme/widgets/runs/300"
        )
        page.get_by_label("A note for the agent before the feedback (optional)").fill("write hello.txt: hello, world")
        page.get_by_role("button", name="Send to the agent (3)").click()
        expect(page.get_by_role("alert")).to_have_text("Sent 3 items of feedback on #1 to the agent in one follow-up.")
        expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
        expect(feedback.get_by_text("Answered: the agent's run was pushed")).to_have_count(3, timeout=RUN_TIMEOUT)
        expect(page.get_by_role("button", name="Send to the agent (3)")).to_have_count(0)

        branch = f"auto-claude/{task_id}"
        assert git(bare, "show", f"{branch}:hello.txt").startswith("hello, world\n")
        assert len(forge.pulls("github", "acme/widgets")) == 1
        page.close()  # before the server stops: its socket would reconnect to nothing
