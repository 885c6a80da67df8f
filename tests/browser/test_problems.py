"""The browser tests' own watch (tests/browser_problems.py): every kind of problem a page can report
is caught and named, so that a browser test fails on it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser_problems import Problems

pytestmark = [pytest.mark.browser]

OOB_WITH_NO_TARGET = (
    """htmx.swap(document.body, '<p id="nowhere" hx-swap-oob="true">x</p>', {swapStyle: "beforeend"})"""
)


def test_console_errors_csp_violations_uncaught_exceptions_and_htmx_errors_are_all_caught(live_app, browser):
    problems = Problems()
    context = problems.watch(browser.new_context())
    try:
        page = context.new_page()
        page.goto(live_app.base_url + "/accounts/login/")
        expect(page.get_by_label("Username")).to_be_visible()
        page.screenshot()  # Playwright's own screenshots break nothing
        problems.settle(context)
        assert problems.seen == []

        page.evaluate("console.error('a console error')")
        page.evaluate("document.body.setAttribute('style', 'color: red')")
        page.evaluate("setTimeout(() => { throw new Error('an uncaught error') }, 0)")
        page.evaluate(OOB_WITH_NO_TARGET)
        page.wait_for_function("document.readyState === 'complete'")
        problems.settle(context)
    finally:
        context.close()
    seen = "\n".join(problems.seen)
    assert "console error: a console error" in seen
    assert "Applying inline style violates the following Content Security Policy directive" in seen
    assert "CSP violation: style-src-attr" in seen and "by body" in seen
    assert "uncaught: Error: an uncaught error" in seen
    assert "htmx error event htmx:oobErrorNoTarget (target #nowhere)" in seen

    problems.allow(r"a console error|inline style|style-src-attr|an uncaught error|oobErrorNoTarget")
    assert problems.unexpected() == []
