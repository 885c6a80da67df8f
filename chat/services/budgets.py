"""Monthly budgets (USD) per member and per project: how much is used and left, and the refusal of
a turn that would start past one.

Used means the cost the turns of the calendar month (UTC) recorded, so far: of the member's own
chats and tasks, or of everything run in the project. A turn is checked when it is about to run
(:class:`~chat.services.turns.TurnHooks`): a message sent while there was room but started after
the budget ran out is refused too. A turn that starts with a little room left may end past the
budget: the one after it is refused.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from members.models import Budget

from ..models import Session, Turn

OWN_FOLDERS = "default"
# Every refusal starts so: the API tells it from other failures of a turn by it (402).
REFUSAL_START = "Over budget:"


@dataclass(frozen=True)
class Standing:
    """One budget as it stands this month."""

    whom: str  # "your monthly budget", "the monthly budget of project api"
    limit: Decimal
    used: Decimal

    @property
    def left(self) -> Decimal:
        return max(self.limit - self.used, Decimal(0))

    @property
    def spent(self) -> bool:
        return self.used >= self.limit


def month_start(now: datetime.datetime | None = None) -> datetime.datetime:
    now = now or timezone.now()
    return now.astimezone(datetime.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _cost(turns: Q) -> Decimal:
    total = Turn.objects.filter(turns, created_at__gte=month_start()).aggregate(c=Sum("cost_usd"))["c"] or 0.0
    return Decimal(str(round(total, 4)))


def _project_turns(project: str) -> Q:
    # Members' own folders are stored with a blank project key.
    if project == OWN_FOLDERS:
        return Q(session__project__in=("", OWN_FOLDERS))
    return Q(session__project=project)


def standings(*, user_id: int | None, project: str) -> list[Standing]:
    """The budgets that apply to a turn of ``user_id`` in ``project`` ("" : their own folder)."""
    found: list[Standing] = []
    if user_id is not None:
        mine = Budget.objects.filter(user_id=user_id).first()
        if mine is not None:
            found.append(Standing("your monthly budget", mine.monthly_usd, _cost(Q(session__owner_id=user_id))))
    key = project or OWN_FOLDERS
    shared = Budget.objects.filter(project=key).first()
    if shared is not None:
        whom = (
            "the monthly budget of members' own folders"
            if key == OWN_FOLDERS
            else f"the monthly budget of project {key}"
        )
        found.append(Standing(whom, shared.monthly_usd, _cost(_project_turns(key))))
    return found


def own_standings(*, user_id: int) -> list[Standing]:
    """The budgets on a member's chats in their own folder, read with one query when they have none
    (every page shows what is left of them)."""
    if not Budget.objects.filter(Q(user_id=user_id) | Q(project=OWN_FOLDERS)).exists():
        return []
    return standings(user_id=user_id, project="")


def refusal(*, user_id: int | None, project: str) -> str | None:
    """Why a turn of ``user_id`` in ``project`` may not start now, or None if every budget has room."""
    for standing in standings(user_id=user_id, project=project):
        if standing.spent:
            return (
                f"{REFUSAL_START} {standing.whom} of ${standing.limit:.2f} is used up (${standing.used:.2f} this month), so "
                "this message was not run. An admin (staff) can raise the budget in the admin (Budgets); it "
                "starts again on the 1st."
            )
    return None


def refusal_for_session(session: Session) -> str | None:
    return refusal(user_id=session.owner_id, project=session.project)


def is_refusal(error: str) -> bool:
    return error.startswith(REFUSAL_START)
