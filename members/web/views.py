"""Invites on the web: staff make a link (Settings), the person it is for makes their account there."""

from __future__ import annotations

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .. import services

INVITE_LIFETIMES = ((1, "1 day"), (7, "7 days"), (30, "30 days"))


class JoinForm(UserCreationForm[User]):
    """The name and password a new member picks (the password checked by AUTH_PASSWORD_VALIDATORS)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.fields["password2"].label = "Password again"


class InviteForm(forms.Form):
    days = forms.TypedChoiceField(label="Works for", choices=INVITE_LIFETIMES, coerce=int, initial=7)
    note = forms.CharField(label="For whom (only staff see it)", max_length=120, required=False)


@staff_member_required
@require_POST
@never_cache
def new_invite(request: HttpRequest) -> HttpResponse:
    """Make an invite link and show it, this once."""
    form = InviteForm(request.POST)
    if not form.is_valid():
        return render(request, "members/invite_made.html", {"form": form}, status=400)
    user = request.user if isinstance(request.user, User) else None
    made = services.make_invite(created_by=user, days=form.cleaned_data["days"], note=form.cleaned_data["note"])
    link = request.build_absolute_uri(reverse("members:invite", args=[made.token]))
    return render(request, "members/invite_made.html", {"form": InviteForm(), "link": link, "invite": made.invite})


@never_cache
def invite(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invite link opens: pick a name and a password, and you are in."""
    try:
        found = services.invite_for(token=token)
    except services.Refused as exc:
        return render(request, "members/invite_gone.html", {"reason": str(exc)}, status=410)
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.accept_invite(
                token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except services.Refused as exc:
            form.add_error(None, str(exc))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("chat:index")
    return render(request, "members/invite.html", {"form": form, "invite": found}, status=400 if form.errors else 200)
