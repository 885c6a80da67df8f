"""Invites on the web: only staff make them; the link's page makes the account and logs it in."""

from __future__ import annotations

import pytest
from django.test import Client

from members import services
from tests.factories import logged_in_client, make_user

pytestmark = [pytest.mark.django_db]


def test_only_staff_make_invite_links_and_see_the_form():
    member = logged_in_client(user=make_user())
    assert "Make an invite link" not in member.get("/settings/").content.decode()
    assert member.post("/accounts/invite/new/", {"days": "7"}).status_code == 302  # to the admin's login
    staff = logged_in_client(user=make_user(is_staff=True))
    assert "Make an invite link" in staff.get("/settings/").content.decode()
    made = staff.post("/accounts/invite/new/", {"days": "7", "note": "Ivan"})
    page = made.content.decode()
    assert made.status_code == 200 and "http://testserver/accounts/invite/" in page and "works once" in page
    assert staff.post("/accounts/invite/new/", {"days": "365"}).status_code == 400


def test_the_link_makes_an_account_checks_the_password_and_then_is_gone():
    made = services.make_invite(created_by=None)
    guest = Client()
    url = f"/accounts/invite/{made.token}/"
    assert "Join Claude Code chat" in guest.get(url).content.decode()
    weak = guest.post(url, {"username": "ivan", "password1": "ivan", "password2": "ivan"})
    assert weak.status_code == 400 and "at least 10 characters" in weak.content.decode()
    joined = guest.post(url, {"username": "ivan", "password1": "a long passphrase", "password2": "a long passphrase"})
    assert joined.status_code == 302 and joined["Location"] == "/"
    assert "ivan" in guest.get("/").content.decode()
    gone = Client().get(url)
    assert gone.status_code == 410 and "already used" in gone.content.decode()


def test_a_member_changes_their_password_on_the_apps_own_page():
    user = make_user()
    client = logged_in_client(user=user)
    assert "Change your password" in client.get("/settings/").content.decode()
    page = client.get("/accounts/password_change/").content.decode()
    assert "Change my password" in page and "Django administration" not in page
