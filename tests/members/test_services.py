"""Invites and accounts made by staff: what works once, what expires, what is refused and why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from members import services
from members.models import Invite
from tests.factories import make_user

pytestmark = [pytest.mark.django_db]


def test_an_invite_makes_one_account_once_and_keeps_only_a_hash_of_its_token():
    admin = make_user(is_staff=True)
    made = services.make_invite(created_by=admin, note="for Ivan")
    stored = Invite.objects.get()
    assert made.token not in stored.token_hash and stored.state == "open" and stored.created_by == admin

    ivan = services.accept_invite(token=made.token, username="ivan", password="a long passphrase")
    assert ivan.check_password("a long passphrase") and not ivan.is_staff
    stored.refresh_from_db()
    assert stored.state == "used" and stored.used_by == ivan
    with pytest.raises(services.Refused, match="already used: each works once"):
        services.accept_invite(token=made.token, username="ivan2", password="a long passphrase")
    assert not User.objects.filter(username="ivan2").exists()


def test_an_expired_unknown_or_malformed_invite_says_so():
    made = services.make_invite(created_by=None, days=1)
    Invite.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(services.Refused, match=r"expired on .* Ask an admin for a new one"):
        services.invite_for(token=made.token)
    for token in ("x" * 43, "short", "../../etc"):
        with pytest.raises(services.Refused, match="not known: check that it was copied whole"):
            services.invite_for(token=token)
    with pytest.raises(services.Refused, match="from 1 to 90 days"):
        services.make_invite(created_by=None, days=0)


def test_a_taken_name_leaves_the_invite_unused():
    make_user(username="taken")
    made = services.make_invite(created_by=None)
    with pytest.raises(services.Refused, match="'taken' is taken"):
        services.accept_invite(token=made.token, username="taken", password="a long passphrase")
    assert Invite.objects.get().state == "open"


def test_staff_add_a_member_with_a_password_made_for_them():
    made = services.add_member(username="nora")
    assert made.user.check_password(made.password) and len(made.password) >= 16 and not made.user.is_staff
    assert services.add_member(username="olga", staff=True).user.is_staff
    with pytest.raises(services.Refused, match="already: pick another name"):
        services.add_member(username="NORA")
    with pytest.raises(services.Refused, match="cannot be a member's name"):
        services.add_member(username="no spaces please")
