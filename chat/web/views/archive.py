"""The Restore button of an archived chat."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from chat.models import Session
from chat.services.archive import ArchiveError, restore_session

from .types import AuthedRequest


@login_required
@require_POST
def restore(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = get_object_or_404(Session, pk=session_id, owner=request.user)
    try:
        result = restore_session(session=session, engine=request.engine, actor=request.user)
    except ArchiveError as exc:
        messages.error(
            request, f"This chat could not be restored: {exc}. It stays archived; tell an admin if this repeats."
        )
        return redirect(session)
    if result.warning:
        messages.warning(request, result.warning.capitalize() + ".")
    elif not result.already:
        messages.success(request, "Restored: the chat continues with its memory.")
    return redirect(session)
