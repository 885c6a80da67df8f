"""The usage dashboard (staff: everyone's, by member; a member: their own) and its CSV download."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from chat.services import budgets
from chat.web.views.types import AuthedRequest

from .. import charts, search
from ..usage import DIMENSIONS, usage


def _selection(request: AuthedRequest) -> tuple[str, str]:
    """The member a staff person picked ("" : everyone) and what the chart stacks by."""
    member = request.GET.get("member", "") if request.user.is_staff else ""
    by = request.GET.get("by", "")
    if by not in DIMENSIONS:
        by = "member" if request.user.is_staff and not member else "project"
    return member, by


@login_required
@require_GET
def dashboard(request: AuthedRequest) -> HttpResponse:
    member, by = _selection(request)
    found = usage(viewer=request.user, member=member)
    context = {
        "usage": found,
        "chart": charts.cost_per_day(found, by=by),
        "by": by,
        "dimensions": DIMENSIONS,
        "member": member,
        "members": list(User.objects.order_by("username").values_list("username", flat=True))
        if request.user.is_staff
        else [],
        "tables": [(d, found.by(d)) for d in DIMENSIONS],
        # What is left this month of the budgets that apply to the person's own chats.
        "budgets": budgets.standings(user_id=request.user.pk, project=""),
    }
    return render(request, "team/usage.html", context)


@login_required
@require_GET
def usage_csv(request: AuthedRequest) -> HttpResponse:
    member, _ = _selection(request)
    found = usage(viewer=request.user, member=member)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{found.since}-{found.until}.csv"'
    writer = csv.writer(response)
    writer.writerow(["day", "member", "project", "model", "turns", "input_tokens", "output_tokens", "cost_usd"])
    for row in found.rows:
        writer.writerow(
            [
                row.day.isoformat(),
                _cell(row.member),
                _cell(row.project),
                _cell(row.model),
                row.turns,
                row.input_tokens,
                row.output_tokens,
                f"{row.cost_usd:.6f}",
            ]
        )
    return response


def _cell(text: str) -> str:
    """A name as a spreadsheet reads it: never as a formula (a member may pick a name that starts with =)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@login_required
@require_GET
def team_search(request: AuthedRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    try:
        page = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        page = 1
    try:
        hits, total = search.team_search(viewer=request.user, query=query, page=page)
    except search.NotStaff as exc:
        return render(request, "members/viewer_refused.html", {"text": str(exc)}, status=403)
    pages = -(-total // search.PER_PAGE)
    context = {"query": query, "hits": hits, "total": total, "page": page, "pages": pages}
    return render(request, "team/search.html", context)
