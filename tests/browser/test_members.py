"""Adding members: by a command that prints a password once, or by an invite link made by staff."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from devtools.oidc_provider import OidcProvider, Person
from tests.browser.test_chat import log_in
from tests.conftest import serving

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def test_a_member_added_by_command_logs_in_with_the_printed_password(live_app, page):
    printed = live_app.manage("adduser", "nora")
    password = re.search(r"password: (\S+)", printed).group(1)
    assert "shown only now" in printed
    log_in(page, live_app.base_url, "nora", password)
    expect(page.locator(".account")).to_contain_text("nora")


def test_staff_invite_a_member_by_a_link_that_works_once(live_app, page, browser):
    live_app.create_user(username="ines", password="pw-ines-123", staff=True)
    log_in(page, live_app.base_url, "ines", "pw-ines-123")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("button", name="Make an invite link").click()
    link = page.get_by_label("Invite link").input_value()
    assert link.startswith(live_app.base_url + "/accounts/invite/"), link
    expect(page.get_by_role("status")).to_contain_text("works once")

    guest = browser.new_context().new_page()
    guest.goto(link)
    expect(guest.get_by_role("heading", name="Join Claude Code chat")).to_be_visible()
    guest.get_by_label("Username").fill("ivan")
    guest.get_by_label("Password", exact=True).fill("pw-ivan-123456")
    guest.get_by_label("Password again").fill("pw-ivan-123456")
    guest.get_by_role("button", name="Create my account").click()
    expect(guest.get_by_role("heading", name="Your chats")).to_be_visible()
    expect(guest.locator(".account")).to_contain_text("ivan")

    # Used once: the link says so, and makes no second account.
    again = browser.new_context().new_page()
    answer = again.goto(link)
    assert answer.status == 410
    expect(again.get_by_role("heading", name="This invite link cannot be used")).to_be_visible()
    expect(again.locator("main")).to_contain_text("already used")
    expect(again.get_by_role("button", name="Create my account")).to_have_count(0)
    guest.context.close()
    again.context.close()


def test_signing_in_with_the_identity_provider_lands_on_the_chat_index(stub_api, tmp_path_factory, page):
    provider = OidcProvider().start()
    provider.user = Person(email="grace@example.com")
    env = {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": provider.client_id,
        "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_PROVIDER_NAME": "Acme ID",
    }
    try:
        with serving(stub_api, tmp_path_factory.mktemp("oidc-app"), env=env) as app:
            # Sign-up is by invite (the default): an invite made for her email lets her in, without its link.
            assert "shown only now" in app.manage("invite", "--email", "grace@example.com")
            page.goto(app.base_url + "/")
            expect(page).to_have_url(re.compile(r"/accounts/login/"))
            expect(page.get_by_label("Username")).to_be_visible()  # the local form stays beside it
            page.get_by_role("link", name="Sign in with Acme ID").click()
            expect(page.get_by_role("heading", name="Your chats")).to_be_visible()
            expect(page.locator(".account")).to_contain_text("grace")
    finally:
        provider.stop()
