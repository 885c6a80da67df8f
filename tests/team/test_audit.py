"""The audit log: each of people's actions leaves one row (who, when, what, on which object), written by
the service that does it; the admin shows them read-only, with filters."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import ShareLink
from chat.services.archive import archive_session, restore_session
from members import services as invites
from members.models import AuditEntry, Budget
from tests.factories import PASSWORD, logged_in_client, make_session, make_user

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db]

A = AuditEntry.Action


def _entries(action: str) -> list[tuple[str, str, str]]:
    return [(e.actor_name, e.object_repr, e.detail) for e in AuditEntry.objects.filter(action=action).order_by("id")]


def test_sign_in_and_a_failed_one(client):
    make_user(username="ada")
    assert client.post("/accounts/login/", {"username": "ada", "password": "wrong one"}).status_code == 200
    assert client.post("/accounts/login/", {"username": "ada", "password": PASSWORD}).status_code == 302
    assert _entries(A.SIGN_IN_FAILED) == [("ada", "", "")]
    assert _entries(A.SIGN_IN) == [("ada", "", "")]


def test_share_links_tokens_and_a_deleted_chat(fake_cli):
    ada = make_user(username="ada")
    chat = make_session(owner=ada, title="Plans")
    client = logged_in_client(user=ada)
    assert client.post(f"/chat/{chat.id}/share/new/", {"expires": "7d"}).status_code == 200
    link = ShareLink.objects.get(session=chat)
    assert (
        _entries(A.SHARE_MADE)[0][:2] == ("ada", "Plans") and f"link {link.pk}, until" in _entries(A.SHARE_MADE)[0][2]
    )
    client.post(f"/chat/{chat.id}/share/{link.pk}/revoke/")
    assert _entries(A.SHARE_REVOKED) == [("ada", "Plans", f"link {link.pk}")]

    client.post("/settings/token/")
    client.post("/settings/token/")
    issued = _entries(A.TOKEN_ISSUED)
    assert len(issued) == 2 and all(e[:2] == ("ada", "ada") and e[2].startswith("token …") for e in issued)
    assert _entries(A.TOKEN_REVOKED) == [("ada", "ada", issued[0][2] + ", replaced")]

    assert client.post(f"/chat/{chat.id}/delete/").status_code == 302
    assert _entries(A.CHAT_DELETED) == [("ada", "Plans", "owned by ada")]


@pytest.mark.django_db(transaction=True)
async def test_archive_and_restore_by_a_person(fake_cli, rt):
    await sync_to_async(_archive_and_restore)(rt)


def _archive_and_restore(rt) -> None:
    staff = make_user(username="root", is_staff=True)
    chat = make_session(owner=make_user(username="bo"), title="Old")
    archive_session(session=chat, engine=rt, actor=staff)
    restore_session(session=chat, engine=rt, actor=staff)
    assert _entries(A.CHAT_ARCHIVED) == [("root", "Old", "")] and _entries(A.CHAT_RESTORED) == [("root", "Old", "")]


def test_invites_budgets_and_the_read_only_admin():
    staff = make_user(username="root", is_staff=True)
    made = invites.make_invite(created_by=staff, days=1, note="Cy")
    invites.accept_invite(token=made.token, username="cy", password="a long password 1")
    assert _entries(A.INVITE_MADE) == [("root", "Invite 1 for Cy".replace("1", str(made.invite.pk)), "for 1 day")]
    assert _entries(A.INVITE_USED)[0][0] == "cy" and _entries(A.INVITE_USED)[0][2] == "made the account cy"

    admin = logged_in_client(user=staff)
    added = admin.post("/admin/members/budget/add/", {"user": "", "project": "api", "monthly_usd": "25.00"})
    assert added.status_code == 302, added.content.decode()[:2000]
    budget = Budget.objects.get(project="api")
    admin.post(f"/admin/members/budget/{budget.pk}/delete/", {"post": "yes"})
    assert _entries(A.BUDGET_CHANGED) == [("root", "$25.00 a month for project api", "$25.00 a month")]
    assert _entries(A.BUDGET_REMOVED) == [("root", "$25.00 a month for project api", "")]

    listing = admin.get("/admin/members/auditentry/?action__exact=budget-changed").content.decode()
    assert "Budget changed" in listing and "Invite made" not in listing.split('id="result_list"')[1]
    assert "Add audit entry" not in admin.get("/admin/members/auditentry/").content.decode()
    users = admin.get("/admin/auth/user/").content.decode()
    assert '<td class="field-role">Admin</td>' in users and '<td class="field-role">Member</td>' in users
    change = admin.get(f"/admin/auth/user/{staff.pk}/change/").content.decode()
    assert 'name="profile-0-role"' in change and "Viewer: reads what is shared with them, runs nothing." in change
    entry = AuditEntry.objects.first()
    assert admin.post(f"/admin/members/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
