"""Tokens and cost over time, from the turns' own records (each turn stores its tokens and cost).

A turn counts on the day it was sent (UTC), for the chat's owner (a task's turns: its creator's
session), its project ("default": the member's own folder) and the model its chat is set to
(turns do not record the model they ran on; a chat whose model was changed counts under its
current one).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat.models import Turn

DAYS = 30
DIMENSIONS = ("member", "project", "model")
_FIELDS = {"member": "session__owner__username", "project": "session__project", "model": "session__model"}
# The names the page gives to blanks.
OWN_FOLDER = "default"
CLI_DEFAULT_MODEL = "(the CLI's default)"


@dataclass(frozen=True)
class Row:
    day: datetime.date
    member: str
    project: str
    model: str
    turns: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Total:
    name: str
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, row: Row) -> None:
        self.turns += row.turns
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cost_usd += row.cost_usd


@dataclass
class Usage:
    since: datetime.date
    until: datetime.date
    rows: list[Row]
    total: Total = field(default_factory=lambda: Total("all"))

    def by(self, dimension: str) -> list[Total]:
        """Totals per member, project or model, the costliest first."""
        totals: dict[str, Total] = {}
        for row in self.rows:
            name = getattr(row, dimension)
            totals.setdefault(name, Total(name)).add(row)
        return sorted(totals.values(), key=lambda t: (-t.cost_usd, -t.tokens, t.name))

    def days(self) -> list[datetime.date]:
        return [self.since + datetime.timedelta(days=n) for n in range((self.until - self.since).days + 1)]


def usage(
    *, viewer: AbstractBaseUser | AnonymousUser, member: str = "", days: int = DAYS, today: datetime.date | None = None
) -> Usage:
    """The last ``days`` days of usage ``viewer`` may see: staff everyone's (or ``member``'s), others their own."""
    until = today or timezone.now().date()
    since = until - datetime.timedelta(days=days - 1)
    turns = Turn.objects.filter(created_at__date__gte=since, created_at__date__lte=until)
    if not getattr(viewer, "is_staff", False):
        turns = turns.filter(session__owner_id=viewer.pk)
    elif member:
        turns = turns.filter(session__owner__username=member)
    grouped = (
        turns.annotate(day=TruncDate("created_at"))
        .values("day", *_FIELDS.values())
        .annotate(n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd"))
        .order_by("day", *_FIELDS.values())
    )
    rows = [
        Row(
            day=g["day"],
            member=g[_FIELDS["member"]],
            project=g[_FIELDS["project"]] or OWN_FOLDER,
            model=g[_FIELDS["model"]] or CLI_DEFAULT_MODEL,
            turns=g["n"],
            input_tokens=g["i"] or 0,
            output_tokens=g["o"] or 0,
            cost_usd=g["c"] or 0.0,
        )
        for g in grouped
    ]
    result = Usage(since=since, until=until, rows=rows)
    for row in rows:
        result.total.add(row)
    return result
