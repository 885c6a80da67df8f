"""Invites on the web: staff make a link (Settings), the person it is for makes their account there;
the login page, with the identity provider's button beside the password form."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
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
    email = forms.EmailField(
        label="Their email (optional: signing in with the identity provider under it uses the invite)",
        required=False,
    )


class PasswordLoginForm(AuthenticationForm):
    """Django's login form; with LOCAL_PASSWORDS=staff, a right password of a member who is not
    staff is refused, saying to sign in with the identity provider."""

    refusal = ""

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if settings.LOCAL_PASSWORDS == "staff" and not getattr(user, "is_staff", False):
            self.refusal = f"Passwords here are for admins only: sign in with {settings.OIDC_PROVIDER_NAME} instead."
            raise forms.ValidationError(self.refusal, code="password_sign_in_off")


class LoginView(auth_views.LoginView):
    form_class = PasswordLoginForm

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        context: dict[str, object] = super().get_context_data(**kwargs)
        context["oidc_enabled"] = settings.OIDC_ENABLED
        context["oidc_provider_name"] = settings.OIDC_PROVIDER_NAME
        context["local_passwords"] = settings.LOCAL_PASSWORDS
        context["oidc_sign_up"] = settings.OIDC_SIGN_UP
        return context


@staff_member_required
@require_POST
@never_cache
def new_invite(request: HttpRequest) -> HttpResponse:
    """Make an invite link and show it, this once."""
    form = InviteForm(request.POST)
    if not form.is_valid():
        return render(request, "members/invite_made.html", {"form": form}, status=400)
    user = request.user if isinstance(request.user, User) else None
    made = services.make_invite(
        created_by=user,
        days=form.cleaned_data["days"],
        note=form.cleaned_data["note"],
        email=form.cleaned_data["email"],
    )
    link = request.build_absolute_uri(reverse("members:invite", args=[made.token]))
    return render(request, "members/invite_made.html", {"form": InviteForm(), "link": link, "invite": made.invite})


@never_cache
def invite(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invite link opens: pick a name and a password, and you are in."""
    try:
        found = services.invite_for(token=token)
    except services.Refused as exc:
        return render(request, "members/invite_gone.html", {"reason": str(exc)}, status=410)
    # With LOCAL_PASSWORDS=staff a new member (never staff) would make a password they could not log in with.
    passwords = settings.LOCAL_PASSWORDS == "all"
    form = JoinForm(request.POST if passwords and request.method == "POST" else None)
    refusal = ""
    if request.method == "POST" and not passwords:
        refusal = f"Passwords here are for admins only: join with {settings.OIDC_PROVIDER_NAME} instead."
    elif request.method == "POST" and form.is_valid():
        try:
            user = services.accept_invite(
                token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except services.Refused as exc:
            form.add_error(None, str(exc))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("chat:index")
    context = {
        "form": form,
        "invite": found,
        "oidc_enabled": settings.OIDC_ENABLED and settings.OIDC_SIGN_UP != "off",
        "oidc_provider_name": settings.OIDC_PROVIDER_NAME,
        "token": token,
        "passwords": passwords,
        "refusal": refusal,
    }
    return render(request, "members/invite.html", context, status=400 if form.errors or refusal else 200)
