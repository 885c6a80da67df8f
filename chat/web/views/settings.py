"""The settings page: the user's API token."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from chat.models import ApiToken
from chat.services.tokens import regenerate_token

from .types import AuthedRequest


@login_required
def settings_page(request: AuthedRequest) -> HttpResponse:
    token = ApiToken.objects.filter(user=request.user).first()
    return render(request, "chat/settings.html", {
        "token": token,
        "chat_url": request.build_absolute_uri(reverse("api:chat")),
        "openapi_url": request.build_absolute_uri(reverse("api:openapi-json")),
    })


@login_required
@require_POST
def regenerate(request: AuthedRequest) -> HttpResponse:
    had_one = ApiToken.objects.filter(user=request.user).exists()
    regenerate_token(user=request.user)
    messages.success(request, "New API token made; the old one no longer works. Update your IDE plugin."
                     if had_one else "API token made.")
    return redirect("chat:settings")
