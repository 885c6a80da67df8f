"""The setup and check commands of a member's own folder: a small settings page (an admin sets a
shared project's under Admin → Project checks). Async, as the other task views (see :mod:`.views`)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from chat.web.views.types import AuthedRequest

from ..checks_models import MAX_RUNS_LIMIT
from ..services import checks as services
from ..services.common import TaskRefused
from .forms import ChecksForm


@login_required
@require_http_methods(["GET", "POST"])
async def own_checks(request: AuthedRequest) -> HttpResponse:
    current = await sync_to_async(services.own_checks)(user=request.user)
    if request.method == "POST":
        form = ChecksForm(request.POST, instance=current)
        if await sync_to_async(form.is_valid)():
            try:
                data = form.cleaned_data
                commands = services.Commands(
                    setup_command=data["setup_command"],
                    check_command=data["check_command"],
                    max_check_runs=data["max_check_runs"],
                    timeout_seconds=data["timeout_seconds"],
                )
                await services.save_own_checks(user=request.user, commands=commands)
            except TaskRefused as exc:
                messages.error(request, str(exc))
                return redirect("tasks:own-checks")
            messages.success(request, "Saved: they apply from the next run of a task in your own folder.")
            return redirect("tasks:own-checks")
    else:
        form = ChecksForm(instance=current)
    context = {"form": form, "max_runs": MAX_RUNS_LIMIT}
    return await sync_to_async(lambda: render(request, "tasks/checks.html", context, status=200))()
