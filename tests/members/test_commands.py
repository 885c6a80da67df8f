"""The management commands that add members, and the first-run text that names them."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from chat.services.accounts import ensure_admin
from members import services

pytestmark = [pytest.mark.django_db]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_adduser_prints_a_password_once_that_logs_in():
    printed = run("adduser", "nora")
    password = re.search(r"password: (\S+)", printed).group(1)
    assert User.objects.get(username="nora").check_password(password)
    assert "shown only now and stored nowhere" in printed and "Settings → Change your password" in printed
    with pytest.raises(CommandError, match="There is a member called 'nora' already"):
        run("adduser", "nora")


def test_invite_prints_a_link_that_works_once():
    printed = run("invite", "--days", "3", "--url", "https://chat.example.com/")
    link = re.search(r"https://chat\.example\.com/accounts/invite/(\S+)/", printed)
    assert link and "works once" in printed
    assert services.invite_for(token=link.group(1)).state == "open"
    with pytest.raises(CommandError, match="from 1 to 90 days"):
        run("invite", "--days", "365")


def test_the_first_run_text_says_how_to_add_members(tmp_path):
    for text in (ensure_admin(data_dir=tmp_path, login_url="/login/"), ensure_admin(data_dir=tmp_path, login_url="/")):
        assert "Settings → Invite a member" in text and "scripts/manage adduser NAME" in text
        assert "Admin → Users → Add user" in text
