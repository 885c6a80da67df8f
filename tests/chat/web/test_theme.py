"""The theme a browser picked: kept in a cookie, written on every page's <html>."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db]


def test_a_picked_theme_is_kept_and_served_with_every_page():
    browser = Client()
    assert 'data-theme="system"' in browser.get("/accounts/login/").content.decode()
    kept = browser.post("/theme/", {"theme": "dark", "next": "/accounts/login/"})
    assert kept.status_code == 302 and kept["Location"] == "/accounts/login/"
    assert kept.cookies["theme"].value == "dark" and kept.cookies["theme"]["httponly"]
    page = browser.get("/accounts/login/").content.decode()
    assert '<html lang="en" data-theme="dark">' in page and '<meta name="color-scheme" content="dark">' in page


def test_the_pages_script_gets_no_content_and_elsewhere_is_never_a_way_back():
    browser = Client()
    assert browser.post("/theme/", {"theme": "light"}, headers={"X-Requested-With": "fetch"}).status_code == 204
    away = browser.post("/theme/", {"theme": "light", "next": "https://example.com/"})
    assert away["Location"] == "/"
    unknown = browser.post("/theme/", {"theme": "pink"})
    assert unknown.status_code == 400 and "pick one of system, light, dark" in unknown.content.decode()
    browser.cookies["theme"] = "pink"
    assert 'data-theme="system"' in browser.get("/accounts/login/").content.decode()
