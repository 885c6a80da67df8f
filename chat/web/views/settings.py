"""The settings page: the user's API token, shown once when it is made; links to the project memory
of each folder they may use."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from chat import projects
from chat.models import ApiToken
from chat.services.tokens import issue_token
from members.web.views import InviteForm

from .types import AuthedRequest


def _page(request: AuthedRequest, *, new_key: str = "", replaced: bool = False) -> HttpResponse:
    return render(
        request,
        "chat/settings.html",
        {
            "token": ApiToken.objects.filter(user=request.user).first(),
            "new_key": new_key,
            "replaced": replaced,
            "chat_url": request.build_absolute_uri(reverse("api:chat")),
            "openapi_url": request.build_absolute_uri(reverse("api:openapi-json")),
            "invite_form": InviteForm() if request.user.is_staff else None,
            # Project memory: the CLAUDE.md of each folder the member's chats may work in.
            "projects": projects.projects_for(request.user),
        },
    )


@login_required
def settings_page(request: AuthedRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
@never_cache
def regenerate(request: AuthedRequest) -> HttpResponse:
    had_one = ApiToken.objects.filter(user=request.user).exists()
    # Rendered, not redirected to: the token is stored nowhere, so this answer is the only place it shows.
    return _page(request, new_key=issue_token(user=request.user, actor=request.user).key, replaced=had_one)
