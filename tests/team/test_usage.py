"""The usage dashboard and its CSV: figures that add up to the turns' recorded costs, each person's own."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from chat.models import Session, Turn
from tests.factories import logged_in_client, make_session, make_user

pytestmark = pytest.mark.django_db


def _turn(session: Session, cost: float, *, days_ago: int = 0, tokens: tuple[int, int] = (100, 20)) -> Turn:
    return Turn.objects.create(
        session=session,
        prompt="hi",
        status=Turn.Status.DONE,
        cost_usd=cost,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        created_at=timezone.now() - datetime.timedelta(days=days_ago),
    )


@pytest.fixture
def ledger(tmp_path):
    ada, bob = make_user(username="ada"), make_user(username="bob")
    ada_chat = make_session(owner=ada, workdir=tmp_path)
    api_chat = make_session(owner=ada, workdir=tmp_path)
    Session.objects.filter(pk=api_chat.pk).update(project="api", model="opus")
    bob_chat = make_session(owner=bob, workdir=tmp_path)
    _turn(ada_chat, 0.25, days_ago=1)
    _turn(ada_chat, 0.5)
    _turn(Session.objects.get(pk=api_chat.pk), 1.0, days_ago=3, tokens=(1000, 200))
    _turn(bob_chat, 2.0)
    _turn(bob_chat, 9.0, days_ago=45)  # older than 30 days: not shown
    return ada, bob


def _csv(client, query: str = "") -> list[dict[str, str]]:
    response = client.get("/team/usage.csv" + query)
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_staff_see_everyones_usage_by_member_project_and_model_and_the_csv_adds_up(ledger):
    staff = make_user(username="root", is_staff=True)
    client = logged_in_client(user=staff)
    page = client.get("/team/usage/").content.decode()
    assert "<strong>$3.7500</strong>" in page and "5 turns" not in page and "4 turns" in page
    by_member = page.split('id="usage-by-member"')[1].split("</table>")[0]
    assert '<th scope="row">bob</th><td>1</td><td>100</td><td>20</td><td>2.0000</td>' in by_member
    assert '<th scope="row">ada</th><td>3</td><td>1200</td><td>240</td><td>1.7500</td>' in by_member
    by_model = page.split('id="usage-by-model"')[1].split("</table>")[0]
    assert '<th scope="row">opus</th>' in by_model and "(the CLI&#x27;s default)" in by_model
    # The chart is SVG drawn on the server: one bar per day and member, nothing from a CDN.
    assert '<svg viewBox="0 0 720 220" role="img"' in page and page.count('<rect class="series-') == 4
    assert "2.0000" in page and "cdn" not in page.lower()

    rows = _csv(client)
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal("3.75")
    assert {(r["member"], r["project"], r["model"]) for r in rows} >= {
        ("ada", "api", "opus"),
        ("bob", "default", "(the CLI's default)"),
    }
    only_bob = _csv(client, "?member=bob")
    assert [(r["member"], r["cost_usd"]) for r in only_bob] == [("bob", "2.000000")]


def test_a_member_sees_only_their_own_usage(ledger):
    ada, _ = ledger
    client = logged_in_client(user=ada)
    page = client.get("/team/usage/?member=bob").content.decode()  # not theirs to pick: ignored
    assert "<strong>$1.7500</strong>" in page and "bob" not in page.split('id="usage-by-member"')[1]
    assert sum(Decimal(r["cost_usd"]) for r in _csv(client, "?member=bob")) == Decimal("1.75")
    assert client.get("/team/usage/").status_code == 200
    client.logout()
    assert client.get("/team/usage/").status_code == 302
