from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import turns
from .models import Session, Turn

RECENT_TURNS = 50


@login_required
def index(request: HttpRequest) -> HttpResponse:
    sessions = Session.objects.owned_by(request.user).order_by("-last_activity_at")[:100]
    return render(request, "chat/index.html", {"sessions": sessions})


@login_required
@require_POST
def new_chat(request: HttpRequest) -> HttpResponse:
    session = turns.create_session(owner=request.user)
    return redirect(session)


@login_required
def session_page(request: HttpRequest, session_id) -> HttpResponse:
    session = get_object_or_404(Session, pk=session_id, owner=request.user)
    recent = list(Turn.objects.filter(session=session).order_by("-created_at", "-id")[:RECENT_TURNS].prefetch_related("events"))
    return render(request, "chat/session.html", {"session": session, "turns": recent[::-1]})


@login_required
@require_POST
def stop(request: HttpRequest, session_id) -> HttpResponse:
    session = get_object_or_404(Session, pk=session_id, owner=request.user)
    if not async_to_sync(turns.stop_turn)(session_id=session.id):
        messages.info(request, "Nothing is running in this chat.")
    return redirect(session)
