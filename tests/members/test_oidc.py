"""Sign-in with the identity provider, through the test client against a local OpenID Connect provider
(devtools/oidc_provider.py: real HTTP, ID tokens signed with a real RSA key): who becomes a member as
OIDC_SIGN_UP says, what is refused and what the person reads then, and local passwords beside it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client

from devtools.oidc_provider import OidcProvider, Person
from members import services, signals
from members.models import Invite, ProviderIdentity
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.django_db]


@pytest.fixture(scope="module")
def running_provider():
    provider = OidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def provider(running_provider, settings):
    """The provider, its knobs reset, and the app configured for it (sign-up open unless a test says)."""
    running_provider.user = Person(email="ada@example.com")
    running_provider.tamper = running_provider.wrong_nonce = False
    running_provider.audience = None
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = running_provider.issuer
    settings.OIDC_RP_CLIENT_ID = running_provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = running_provider.client_secret
    settings.OIDC_ENDPOINTS = None
    settings.OIDC_PROVIDER_NAME = "Acme ID"
    settings.OIDC_SIGN_UP = "open"
    return running_provider


def to_provider(client: Client, start: str = "/accounts/oidc/start/") -> str:
    """Press "Sign in with ...": the provider consents at once; returns where it sends the browser back."""
    leaving = client.get(start)
    assert leaving.status_code == 302, leaving.content.decode()
    if not leaving["Location"].startswith("http"):  # an invite's button passes by the start first
        leaving = client.get(leaving["Location"])
    back = requests.get(leaving["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    return back.headers["Location"]


def sign_in(client: Client, start: str = "/accounts/oidc/start/"):
    back = urlsplit(to_provider(client, start))
    return client.get(back.path, {name: values[0] for name, values in parse_qs(back.query).items()})


def test_open_sign_up_makes_a_member_on_first_sign_in_and_finds_them_again(provider):
    client = Client()
    login_page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Acme ID" in login_page and 'name="password"' in login_page
    assert "New here? Sign in with Acme ID: your account is made then." in login_page
    make_user(username="ada")  # someone else has the name: the new member gets another
    signed = sign_in(client)
    assert signed.status_code == 302 and signed["Location"] == "/"
    member = User.objects.get(email="ada@example.com")
    assert member.username == "ada2" and not member.has_usable_password()
    assert "ada2" in client.get("/").content.decode()
    # PKCE as well as state and nonce: the token request carried the verifier.
    assert provider.token_requests[-1]["code_verifier"]

    # Next time: found by the provider's subject, even with another email there.
    provider.user = Person(email="ada.lovelace@example.com", sub=provider.user.sub)
    again = Client()
    assert sign_in(again)["Location"] == "/"
    assert User.objects.filter(email__iexact="ada@example.com").count() == 1
    assert User.objects.count() == 2


def test_an_existing_member_is_matched_by_verified_email_and_taken_where_they_were_going(provider):
    bea = make_user(username="bea")
    bea.email = "Bea@Example.com"
    bea.save()
    provider.user = Person(email="bea@example.com")
    client = Client()
    signed = sign_in(client, "/accounts/oidc/start/?next=/settings/")
    assert signed["Location"] == "/settings/"
    assert ProviderIdentity.objects.get(subject=provider.user.sub).user == bea
    assert client.get("/settings/").status_code == 200


def test_invited_refuses_an_uninvited_email_with_a_clear_page(provider, settings):
    settings.OIDC_SIGN_UP = "invited"
    refused = sign_in(Client())
    page = refused.content.decode()
    assert refused.status_code == 403
    assert "ada@example.com is not invited" in page and "Ask an admin for an invite" in page
    assert not User.objects.filter(email="ada@example.com").exists()


def test_invited_accepts_an_email_with_a_live_invite_and_uses_it_up(provider, settings):
    settings.OIDC_SIGN_UP = "invited"
    made = services.make_invite(created_by=None, email="Ada@example.com")
    client = Client()
    assert sign_in(client)["Location"] == "/"
    member = User.objects.get(email="ada@example.com")
    invite = Invite.objects.get(pk=made.invite.pk)
    assert invite.state == "used" and invite.used_by == member
    assert Client().get(f"/accounts/invite/{made.token}/").status_code == 410


def test_an_invite_link_followed_then_signing_in_makes_the_member(provider, settings):
    settings.OIDC_SIGN_UP = "invited"
    made = services.make_invite(created_by=None)
    client = Client()
    invite_page = client.get(f"/accounts/invite/{made.token}/").content.decode()
    assert "Sign in with Acme ID" in invite_page
    heard = []
    signals.signed_in_with_provider.connect(lambda **kw: heard.append(kw), weak=False, dispatch_uid="t")
    try:
        assert sign_in(client, f"/accounts/invite/{made.token}/sign-in/")["Location"] == "/"
    finally:
        signals.signed_in_with_provider.disconnect(dispatch_uid="t")
    member = User.objects.get(email="ada@example.com")
    assert Invite.objects.get(pk=made.invite.pk).used_by == member
    assert heard[0]["user"] == member and heard[0]["created"] and heard[0]["invite"].pk == made.invite.pk
    gone = Client().get(f"/accounts/invite/{made.token}/sign-in/")
    assert gone.status_code == 410 and "already used" in gone.content.decode()


def test_an_invite_made_for_one_email_refuses_another(provider, settings):
    settings.OIDC_SIGN_UP = "invited"
    made = services.make_invite(created_by=None, email="someone.else@example.com")
    refused = sign_in(Client(), f"/accounts/invite/{made.token}/sign-in/")
    assert refused.status_code == 403 and "for another email address" in refused.content.decode()
    assert Invite.objects.get(pk=made.invite.pk).state == "open"


def test_sign_up_off_lets_only_existing_members_in(provider, settings):
    settings.OIDC_SIGN_UP = "off"
    refused = sign_in(Client())
    assert refused.status_code == 403 and "cannot sign up with the identity provider" in refused.content.decode()
    member = make_user(username="ada")
    member.email = "ada@example.com"
    member.save()
    assert sign_in(Client())["Location"] == "/"


def test_an_unverified_email_is_refused(provider):
    provider.user = Person(email="eve@example.com", email_verified=False)
    refused = sign_in(Client())
    assert refused.status_code == 403
    assert "has not verified your email address eve@example.com" in refused.content.decode()
    assert not User.objects.filter(email="eve@example.com").exists()


def test_a_deactivated_member_is_refused(provider):
    member = make_user(username="dora")
    member.email, member.is_active = "ada@example.com", False
    member.save()
    client = Client()
    refused = sign_in(client)
    assert refused.status_code == 403 and "The account dora is deactivated" in refused.content.decode()
    assert client.get("/")["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("knob", ["tamper", "wrong_nonce"])
def test_a_token_signed_by_another_key_or_for_another_nonce_is_refused(provider, knob):
    setattr(provider, knob, True)
    client = Client()
    refused = sign_in(client)
    assert refused.status_code == 400
    assert "could not be verified for this sign-in" in refused.content.decode()
    assert not User.objects.exists()
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_a_token_made_out_to_another_client_is_refused(provider):
    provider.audience = "another-app"
    refused = sign_in(Client())
    assert refused.status_code == 400 and "could not be verified for this sign-in" in refused.content.decode()
    assert not User.objects.exists()


def test_a_wrong_client_secret_is_said_to_be_refused_by_the_provider(provider, settings):
    settings.OIDC_RP_CLIENT_SECRET = "not-the-secret"
    refused = sign_in(Client())
    page = refused.content.decode()
    assert refused.status_code == 400 and "refused to finish this sign-in" in page and "tell an admin" in page


def test_endpoints_given_whole_are_used_without_discovery(provider, settings):
    bare = OidcProvider(client_id=provider.client_id, client_secret=provider.client_secret).start()
    bare.serves_discovery = False
    try:
        settings.OIDC_ISSUER = bare.issuer  # the ID token's issuer is checked all the same
        answer = Client().get("/accounts/oidc/start/")
        assert answer.status_code == 502 and "could not be reached" in answer.content.decode()
        settings.OIDC_ENDPOINTS = {
            "OIDC_AUTHORIZATION_ENDPOINT": f"{bare.issuer}/authorize",
            "OIDC_TOKEN_ENDPOINT": f"{bare.issuer}/token",
            "OIDC_USERINFO_ENDPOINT": f"{bare.issuer}/userinfo",
            "OIDC_JWKS_URI": f"{bare.issuer}/jwks",
        }
        assert sign_in(Client())["Location"] == "/"
    finally:
        bare.stop()


def test_a_state_that_this_browser_did_not_start_or_already_used_is_refused(provider):
    client = Client()
    back = urlsplit(to_provider(client))
    query = {name: values[0] for name, values in parse_qs(back.query).items()}
    forged = client.get(back.path, {**query, "state": "not-the-one"})
    assert forged.status_code == 400 and "does not belong to this browser" in forged.content.decode()
    assert client.get(back.path, query)["Location"] == "/"
    replayed = Client().get(back.path, query)  # another browser with the same answer
    assert replayed.status_code == 400 and "Start again from the login page" in replayed.content.decode()


def test_a_provider_that_cannot_be_reached_is_said_so(provider, settings):
    down = OidcProvider().start()
    settings.OIDC_ISSUER = down.issuer
    down.stop()
    answer = Client().get("/accounts/oidc/start/")
    assert answer.status_code == 502 and "could not be reached" in answer.content.decode()


def test_the_provider_refusing_consent_is_said_so(provider):
    client = Client()
    leaving = client.get("/accounts/oidc/start/")
    state = parse_qs(urlsplit(leaving["Location"]).query)["state"][0]
    answer = client.get("/accounts/oidc/callback/", {"error": "access_denied", "state": state})
    assert answer.status_code == 403 and "did not sign you in (access_denied)" in answer.content.decode()


def test_local_passwords_work_beside_it_and_may_be_kept_for_staff(provider, settings):
    member = make_user(username="mel")
    staff = make_user(username="sam", is_staff=True)
    client = Client()
    assert client.post("/accounts/login/", {"username": "mel", "password": PASSWORD})["Location"] == "/"

    settings.LOCAL_PASSWORDS = "staff"
    refused = Client().post("/accounts/login/", {"username": member.username, "password": PASSWORD})
    assert refused.status_code == 200
    assert "Passwords here are for admins only: sign in with Acme ID instead." in refused.content.decode()
    assert Client().post("/accounts/login/", {"username": staff.username, "password": PASSWORD}).status_code == 302


def test_without_configuration_there_is_no_button_and_no_route(settings):
    settings.OIDC_ENABLED = False
    assert "Sign in with" not in Client().get("/accounts/login/").content.decode()
    assert Client().get("/accounts/oidc/start/").status_code == 404


def test_with_passwords_for_staff_only_an_invite_is_joined_through_the_provider_only(provider, settings):
    settings.LOCAL_PASSWORDS = "staff"
    made = services.make_invite(created_by=None)
    url = f"/accounts/invite/{made.token}/"
    page = Client().get(url).content.decode()
    assert "Sign in with Acme ID" in page and "Create my account" not in page
    tried = Client().post(url, {"username": "ivan", "password1": "a long passphrase", "password2": "a long passphrase"})
    assert "join with Acme ID instead" in tried.content.decode()
    assert not User.objects.filter(username="ivan").exists() and Invite.objects.get(pk=made.invite.pk).state == "open"


def test_an_issuer_configured_with_a_trailing_slash_still_matches_the_providers(provider, settings):
    settings.OIDC_ISSUER = provider.issuer + "/"
    assert sign_in(Client())["Location"] == "/"
    settings.OIDC_ISSUER = provider.issuer
    assert sign_in(Client())["Location"] == "/"  # found again by the same subject
    assert User.objects.count() == 1 and ProviderIdentity.objects.count() == 1
