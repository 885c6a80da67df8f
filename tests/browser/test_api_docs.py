"""The API's docs page in a real browser with every request off this machine refused: it works offline."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

pytestmark = [pytest.mark.browser]


def test_the_docs_page_shows_every_operation_without_the_network(live_app, page: Page):
    refused: list[str] = []

    def only_this_server(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(live_app.base_url + "/api/docs")

    for path in (
        "/api/analysis/chat",
        "/api/claude-code/pool/status",
        "/api/tasks",
        "/api/tasks/{task_id}",
        "/api/tasks/{task_id}/{action}",
    ):
        expect(page.locator(".opblock-summary-path", has_text=path).first).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    assert refused == [] and failed == []
