"""Share links: the owner's page to create and revoke them, and the read-only page they open."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from chat import selectors
from chat.models import Session, ShareLink
from chat.services import sharing

from .chats import older_turns, own_session
from .types import AuthedRequest, HtmxHttpRequest

SHOWN_LINKS = 20


class ShareForm(forms.Form):
    expires = forms.ChoiceField(
        label="Link expires after",
        choices=[(key, label) for key, (label, _delta) in sharing.EXPIRY_CHOICES.items()],
        initial=sharing.DEFAULT_EXPIRY,
        error_messages={
            "required": "Choose when the link expires.",
            "invalid_choice": "Choose when the link expires from the list.",
        },
    )


def _panel(
    request: AuthedRequest, session: Session, *, form: ShareForm | None = None, new_link: str = "", notice: str = ""
) -> HttpResponse:
    links = ShareLink.objects.filter(session=session)[:SHOWN_LINKS]
    context = {
        "session": session,
        "form": form or ShareForm(),
        "new_link": new_link,
        "notice": notice,
        "links": [(link, sharing.link_state(link)) for link in links],
    }
    return render(request, "chat/share.html#share-panel" if request.htmx else "chat/share.html", context)


@login_required
def share(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    return _panel(request, own_session(request, session_id))


@login_required
@require_POST
def create(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = own_session(request, session_id)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _panel(request, session, form=form)
    _label, expires_in = sharing.EXPIRY_CHOICES[form.cleaned_data["expires"]]
    _link, token = sharing.create_share_link(session=session, user=request.user, expires_in=expires_in)
    # Rendered, not redirected to: the token is stored nowhere, so this answer is the only place it shows.
    return _panel(request, session, new_link=request.build_absolute_uri(reverse("chat:shared", args=[token])))


@login_required
@require_POST
def revoke(request: AuthedRequest, session_id: uuid.UUID, link_id: int) -> HttpResponse:
    session = own_session(request, session_id)
    link = get_object_or_404(ShareLink, pk=link_id, session=session)
    revoked = sharing.revoke_share_links(links=ShareLink.objects.filter(pk=link.pk), actor=request.user)
    notice = "Revoked: that link now answers “not found”." if revoked else "That link was already revoked."
    if request.htmx:
        return _panel(request, session, notice=notice)
    messages.success(request, notice)
    return redirect("chat:share", session_id=session.id)


def _gone(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "chat/share_gone.html", status=404)


def _private(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: no Referer to other sites, and no search engine index.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@never_cache
def shared(request: HtmxHttpRequest, token: str) -> HttpResponse:
    session = sharing.shared_session(token=token)
    if session is None:
        return _private(_gone(request))
    page = selectors.latest_turns(session=session)
    context = {
        "session": session,
        "turns": page.turns,
        "has_older": page.has_older,
        "share_token": token,
        "redact": session.workdir,
    }
    return _private(render(request, "chat/shared.html", context))


@never_cache
def shared_older(request: HtmxHttpRequest, token: str) -> HttpResponse:
    session = sharing.shared_session(token=token)
    if session is None:
        return _private(_gone(request))
    return _private(older_turns(request, session=session, share_token=token, redact=session.workdir))
