"""Monthly budgets: a turn that would start past one is refused before it runs, the message kept and
the reason said (the page, the API's 402); the usage page says what is left. Turns run on the
stand-in CLI process (``fake_cli``): the refusal comes before any process would start."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from chat.models import Session, Turn
from chat.services import turns
from chat.services.tokens import issue_token
from members.models import Budget
from tests.api_client import ApiCaller, EngineClient
from tests.factories import make_session, make_user

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]

WORDS = (
    "Over budget: your monthly budget of $1.00 is used up ($1.00 this month), so this message was not run. "
    "An admin (staff) can raise the budget in the admin (Budgets); it starts again on the 1st."
)


@sync_to_async
def _spent_member(tmp_path):
    ada = make_user(username="ada")
    Budget.objects.create(user=ada, monthly_usd=Decimal("1.00"))
    earlier = make_session(owner=ada, workdir=tmp_path)
    Turn.objects.create(session=earlier, prompt="before", status=Turn.Status.DONE, cost_usd=1.0)
    return ada, issue_token(user=ada).key


async def test_a_member_past_their_budget_is_refused_on_the_page_and_the_api_with_the_message_kept(
    fake_cli, tmp_path, rt
):
    ada, key = await _spent_member(tmp_path)
    chat = await sync_to_async(make_session)(owner=ada)
    turn = await turns.submit_message(engine=rt, session_id=chat.pk, user=ada, text="echo: one more")
    await rt.wait_ended(turn=turn.pk)
    turn = await Turn.objects.aget(pk=turn.pk)
    assert (turn.prompt, turn.status, turn.error) == ("echo: one more", Turn.Status.ERROR, WORDS)
    assert not fake_cli.started  # refused before any process ran
    browser = EngineClient(engine=rt)
    await browser.aforce_login(ada)
    page = await browser.get(chat.get_absolute_url())
    assert "Over budget: your monthly budget of $1.00 is used up" in page.content.decode()

    sid = str(uuid.uuid4())
    api = ApiCaller.with_token(key, engine=rt)
    answer = await api.post("/api/analysis/chat", json.dumps({"sessionId": sid, "message": "echo: via the API"}))
    assert answer.status_code == 402 and answer.json() == {"error": WORDS}
    kept = await Turn.objects.aget(session_id=sid)
    assert kept.prompt == "echo: via the API" and kept.status == Turn.Status.ERROR

    usage = (await browser.get("/team/usage/")).content.decode()
    assert "Your monthly budget: <strong" in usage and "$0.00 left</strong> of $1.00 ($1.00 used)" in usage
    # Every page says it in the sidebar, the chat's own page included.
    assert '<a href="/team/usage/">Budget used up</a> of your monthly budget ($1.00)' in page.content.decode()


async def test_a_projects_budget_counts_everyones_turns_there_and_room_lets_turns_run(fake_cli, tmp_path, rt):
    ada = await sync_to_async(make_user)(username="ada")
    bob = await sync_to_async(make_user)(username="bob")
    await Budget.objects.acreate(project="default", monthly_usd=Decimal("2.00"))
    bobs = await sync_to_async(make_session)(owner=bob)
    first = await turns.submit_message(engine=rt, session_id=bobs.pk, user=bob, text="echo: fine")
    await rt.wait_ended(turn=first.pk)
    assert (await Turn.objects.aget(pk=first.pk)).status == Turn.Status.DONE
    await Turn.objects.acreate(session=bobs, prompt="big", status=Turn.Status.DONE, cost_usd=2.5)
    adas = await sync_to_async(make_session)(owner=ada)
    refused = await turns.submit_message(engine=rt, session_id=adas.pk, user=ada, text="echo: mine")
    await rt.wait_ended(turn=refused.pk)
    refused = await Turn.objects.aget(pk=refused.pk)
    assert refused.status == Turn.Status.ERROR
    assert refused.error.startswith(
        "Over budget: the monthly budget of members' own folders of $2.00 is used up ($2.50"
    )
    assert await Session.objects.filter(pk=adas.pk).aexists()


async def test_a_task_past_its_creators_budget_fails_saying_why(fake_repo, user, rt):
    from tasks import services
    from tasks.models import Task
    from tests.task_helpers import settled

    await Budget.objects.acreate(user=user, monthly_usd=Decimal("0.50"))
    earlier = await sync_to_async(make_session)(owner=user)
    await Turn.objects.acreate(session=earlier, prompt="before", status=Turn.Status.DONE, cost_usd=0.75)
    task = await settled(rt.tasks, await services.create_task(engine=rt, user=user, prompt="write a.txt: hi"))
    assert task.status == Task.Status.FAILED
    assert task.error.startswith("Over budget: your monthly budget of $0.50 is used up ($0.75 this month)")
