"""Sign-in with the team's identity provider (OpenID Connect's code flow, through mozilla-django-oidc).

The library makes the state, nonce and PKCE pair and keeps them in the session (``start``), trades
the code for tokens and checks the ID token's signature against the provider's published keys (the
backend). Here: the endpoints from the issuer's discovery document, the audience, issuer and expiry
of the ID token checked as well (the library leaves the audience alone), and every failure a person
can meet said as a page with what to do, never a library's error. Who the person is, and whether
they may become a member, is the service's (``members.services.sign_in_with_provider``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import login
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render, resolve_url
from django.views.decorators.cache import never_cache
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from .. import services, signals

logger = logging.getLogger(__name__)

# The invite link a person followed before signing in: its token, kept in their session.
INVITE_SESSION_KEY = "members_oidc_invite"
DISCOVERY_TTL = 3600.0

PROVIDER_DOWN = (
    "The identity provider could not be reached, or it answered with an error. Nothing was signed in. "
    "Try again in a few minutes; if it keeps happening, tell an admin."
)
NOT_VERIFIED = (
    "The identity provider's answer could not be verified for this sign-in (its signed token did not check "
    "out), so nothing was signed in. Start again from the login page; if it happens again, tell an admin."
)
TOKEN_REFUSED = (
    "The identity provider refused to finish this sign-in (the sign-in was used already, or this app's "
    "client id or secret is not the one the provider has). Start again from the login page; if it happens "
    "again, tell an admin."
)
STATE_MISMATCH = (
    "This sign-in does not belong to this browser's log-in (it was started in another browser or tab, "
    "used already, or the session ended meanwhile). Start again from the login page."
)


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str
    jwks: str


_discovered: dict[str, tuple[float, Endpoints]] = {}
_discovery_lock = threading.Lock()


def endpoints() -> Endpoints:
    """The provider's endpoints: as configured, or from ``<issuer>/.well-known/openid-configuration``
    (read when first needed and kept for an hour, so the server starts while the provider is down)."""
    given = settings.OIDC_ENDPOINTS
    if given:
        return Endpoints(
            authorization=given["OIDC_AUTHORIZATION_ENDPOINT"],
            token=given["OIDC_TOKEN_ENDPOINT"],
            userinfo=given["OIDC_USERINFO_ENDPOINT"],
            jwks=given["OIDC_JWKS_URI"],
        )
    issuer = settings.OIDC_ISSUER
    with _discovery_lock:
        cached = _discovered.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
    try:
        answer = requests.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
        answer.raise_for_status()
        document = answer.json()
        # OpenID Connect Discovery: the document names the issuer it was asked of (a trailing slash
        # left out of OIDC_ISSUER or not).
        if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            raise ValueError(f"the document names the issuer {document.get('issuer')!r}, not {issuer!r}")
        found = Endpoints(
            authorization=document["authorization_endpoint"],
            token=document["token_endpoint"],
            userinfo=document["userinfo_endpoint"],
            jwks=document["jwks_uri"],
        )
    except (requests.RequestException, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("OIDC discovery at %s failed: %s", issuer, exc)
        raise ProviderUnavailable(str(exc)) from exc
    with _discovery_lock:
        _discovered[issuer] = (time.monotonic(), found)
    return found


class ProviderBackend(OIDCAuthenticationBackend):
    """The library's code exchange and token checks on the discovered endpoints; the member is the
    service's. Not in AUTHENTICATION_BACKENDS: only the callback below uses it."""

    def __init__(self, found: Endpoints) -> None:
        # Not the library's __init__, which reads the endpoints from settings: they are discovered.
        self.OIDC_OP_TOKEN_ENDPOINT = found.token
        self.OIDC_OP_USER_ENDPOINT = found.userinfo
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.invite_token: str | None = None
        self.signed_in: services.SignedIn | None = None

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        """The signature, and what the library leaves out: for this client, from this issuer, not expired."""
        try:
            header = jwt.get_unverified_header(payload)
            if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
                raise SuspiciousOperation(f"the ID token is signed with {header.get('alg')!r}")
            claims: dict[str, Any] = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                # As the provider writes it, with or without the trailing slash OIDC_ISSUER was given.
                issuer=[settings.OIDC_ISSUER.rstrip("/"), settings.OIDC_ISSUER.rstrip("/") + "/"],
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=60,
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token is not valid: {exc}") from exc
        return claims

    def authenticate(self, request: HttpRequest, **kwargs: Any) -> Any:
        self.invite_token = kwargs.pop("invite_token", None)
        return super().authenticate(request, **kwargs)

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: userinfo's subject must be the ID token's, or it is someone else's.
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        claims = {**userinfo, **payload}
        self.signed_in = services.sign_in_with_provider(
            claims=services.ProviderClaims(
                # One form, so that a trailing slash added to OIDC_ISSUER later still finds the member.
                issuer=settings.OIDC_ISSUER.rstrip("/"),
                subject=str(claims["sub"]),
                email=str(claims.get("email") or ""),
                # Some providers send the string "true".
                email_verified=claims.get("email_verified") in (True, "true"),
            ),
            sign_up=settings.OIDC_SIGN_UP,
            invite_token=self.invite_token,
        )
        return self.signed_in.user


def _enabled() -> None:
    if not settings.OIDC_ENABLED:
        raise Http404("Sign-in with an identity provider is not configured here.")


def failed(request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
    """The page a refused or failed sign-in shows: what happened and what to do."""
    signals.provider_sign_in_refused.send(sender=ProviderBackend, request=request, reason=reason)
    return render(request, "members/oidc_failed.html", {"reason": reason}, status=status)


class Start(OIDCAuthenticationRequestView):
    """Off to the provider, with a fresh state, nonce and PKCE challenge kept in the session."""

    def __init__(self, **kwargs: Any) -> None:
        # Not the library's __init__, which reads the authorization endpoint from settings.
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponseBase:
        _enabled()
        try:
            self.OIDC_OP_AUTH_ENDPOINT = endpoints().authorization
        except ProviderUnavailable:
            return failed(request, PROVIDER_DOWN, status=502)
        response: HttpResponseBase = super().get(request)
        return response


start = never_cache(Start.as_view())


@never_cache
def callback(request: HttpRequest) -> HttpResponse:
    """Where the provider sends the person back: check the state, trade the code, sign the member in."""
    _enabled()
    states = request.session.get("oidc_states")
    state = request.GET.get("state", "")
    pending = states.pop(state, None) if isinstance(states, dict) and state else None
    if pending is not None:
        # Used once: a replayed callback finds no state.
        request.session.modified = True
    if error := request.GET.get("error"):
        detail = request.GET.get("error_description") or error
        return failed(
            request,
            f"The identity provider did not sign you in ({detail[:200]}). Start again from the login page, "
            "or ask an admin if you should have access.",
            status=403,
        )
    if not request.GET.get("code") or pending is None:
        return failed(request, STATE_MISMATCH, status=400)
    invite_token = request.session.pop(INVITE_SESSION_KEY, None)
    try:
        backend = ProviderBackend(endpoints())
        user = backend.authenticate(
            request, nonce=pending.get("nonce"), code_verifier=pending.get("code_verifier"), invite_token=invite_token
        )
    except requests.HTTPError as exc:
        if exc.response is None or exc.response.status_code >= 500:
            logger.warning("OIDC sign-in failed at the provider: %s", exc)
            return failed(request, PROVIDER_DOWN, status=502)
        logger.warning("OIDC provider refused the sign-in: %s", exc)
        return failed(request, TOKEN_REFUSED, status=400)
    except (ProviderUnavailable, requests.RequestException, ValueError) as exc:
        logger.warning("OIDC sign-in failed at the provider: %s", exc)
        return failed(request, PROVIDER_DOWN, status=502)
    except (SuspiciousOperation, jwt.PyJWTError, KeyError, TypeError) as exc:
        # A token with no key id, not a JWT at all, or no ID token in the answer included.
        logger.warning("OIDC sign-in refused: %s", exc)
        return failed(request, NOT_VERIFIED, status=400)
    except services.Refused as exc:
        return failed(request, str(exc), status=403)
    if user is None or backend.signed_in is None:
        return failed(request, NOT_VERIFIED, status=400)
    next_url = request.session.pop("oidc_login_next", None)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    signals.signed_in_with_provider.send(
        sender=ProviderBackend,
        request=request,
        user=user,
        created=backend.signed_in.created,
        invite=backend.signed_in.invite,
    )
    return redirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))


@never_cache
def invite_sign_in(request: HttpRequest, token: str) -> HttpResponse:
    """From an invite's page: remember the invite, then sign in with the provider, which uses it."""
    _enabled()
    try:
        services.invite_for(token=token)
    except services.Refused as exc:
        return render(request, "members/invite_gone.html", {"reason": str(exc)}, status=410)
    if settings.OIDC_SIGN_UP == "off":
        return failed(
            request,
            "New members cannot sign up with the identity provider here: pick a name and a password on the "
            "invite's page instead.",
            status=403,
        )
    request.session[INVITE_SESSION_KEY] = token
    return redirect("members:oidc-start")
