"""The settings: security headers on every page, a clean `check --deploy` with the README's
production settings, throttled logins; and a malformed pull-request setting, or a host no agent may
reach among the allowed hosts, stops the start."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from drivers import egress, forge
from drivers.forge import RemoteSpec
from project.settings import envmodels, envoidc, envparsed, envprojectkeys, envremotes
from tests.conftest import ROOT
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_pages_send_a_strict_content_security_policy_and_the_usual_headers():
    response = Client().get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_check_deploy_is_clean_with_the_production_settings_of_the_readme(tmp_path):
    env = {
        **os.environ,
        # The product's settings, not the tests' own (tests/settings.py), which pytest exports.
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "APP_DATA_DIR": str(tmp_path),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
        "DJANGO_HTTPS": "true",
        "DJANGO_HSTS_PRELOAD": "true",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_only_the_tests_hash_passwords_cheaply(settings):
    """The tests' settings (tests/settings.py) hash with MD5 for speed; the product keeps Django's
    default, PBKDF2 at its full work factor, and no variable of the environment lowers it."""
    from django.conf import global_settings

    import project.settings as production

    assert not hasattr(production, "PASSWORD_HASHERS")
    assert global_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.PBKDF2PasswordHasher"
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_wrong_passwords_lock_the_account_and_the_address_with_a_clear_message(settings):
    settings.AXES_FAILURE_LIMIT = 3
    ada = make_user(username="ada")
    client = Client()
    for _ in range(2):
        answer = client.post("/accounts/login/", {"username": "ada", "password": "wrong"})
        assert answer.status_code == 200 and b"did not match" in answer.content
    third = client.post("/accounts/login/", {"username": "ada", "password": "wrong"})
    assert third.status_code == 429 and b"Too many login attempts" in third.content
    # Now even the right password is refused for a while.
    locked = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert locked.status_code == 429 and b"Too many login attempts" in locked.content
    assert "_auth_user_id" not in client.session
    # The address is locked too: guessing another account's password from it gets nowhere.
    make_user(username="bo")
    assert Client().post("/accounts/login/", {"username": "bo", "password": PASSWORD}).status_code == 429
    assert ada.is_active


PROJECTS = {"api": Path("/srv/api"), "web": Path("/srv/web")}


def test_project_remotes_are_read(monkeypatch):
    monkeypatch.setenv("CLAUDE_PROJECT_REMOTES", "api=origin:github:acme/api, web=upstream")
    assert envremotes("CLAUDE_PROJECT_REMOTES", PROJECTS) == {
        "api": RemoteSpec("origin", "github", "acme/api"),
        "web": RemoteSpec("upstream"),
    }
    monkeypatch.delenv("CLAUDE_PROJECT_REMOTES")
    assert envremotes("CLAUDE_PROJECT_REMOTES", PROJECTS) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("api=origin:github:acme", "CLAUDE_PROJECT_REMOTES: api: 'acme' is not a GitHub repository path"),
        ("api", "CLAUDE_PROJECT_REMOTES: 'api' is not KEY=REMOTE"),
        ("docs=origin", "CLAUDE_PROJECT_REMOTES: docs is not among CLAUDE_PROJECTS"),
        ("default=origin", "CLAUDE_PROJECT_REMOTES: default is not among CLAUDE_PROJECTS"),
    ],
)
def test_malformed_project_remotes_stop_the_start(monkeypatch, value, says):
    monkeypatch.setenv("CLAUDE_PROJECT_REMOTES", value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(says)):
        envremotes("CLAUDE_PROJECT_REMOTES", PROJECTS)


def test_projects_that_send_pull_request_feedback_by_themselves_are_shared_ones(monkeypatch):
    assert envprojectkeys("CLAUDE_PR_FEEDBACK_AUTO", PROJECTS) == frozenset()
    monkeypatch.setenv("CLAUDE_PR_FEEDBACK_AUTO", " web ,")
    assert envprojectkeys("CLAUDE_PR_FEEDBACK_AUTO", PROJECTS) == {"web"}
    monkeypatch.setenv("CLAUDE_PR_FEEDBACK_AUTO", "*")
    assert envprojectkeys("CLAUDE_PR_FEEDBACK_AUTO", PROJECTS) == {"api", "web"}
    monkeypatch.setenv("CLAUDE_PR_FEEDBACK_AUTO", "web,default")
    with pytest.raises(ImproperlyConfigured, match="CLAUDE_PR_FEEDBACK_AUTO: default is not among CLAUDE_PROJECTS"):
        envprojectkeys("CLAUDE_PR_FEEDBACK_AUTO", PROJECTS)


def test_a_malformed_api_url_stops_the_start(monkeypatch):
    monkeypatch.setenv("CLAUDE_GITLAB_API_URL", "git.example.com/api/v4")
    with pytest.raises(
        ImproperlyConfigured, match=re.escape("CLAUDE_GITLAB_API_URL: 'git.example.com/api/v4' is not an http")
    ):
        envparsed("CLAUDE_GITLAB_API_URL", forge.GITLAB_API, forge.parse_api_url)
    monkeypatch.delenv("CLAUDE_GITLAB_API_URL")
    assert envparsed("CLAUDE_GITLAB_API_URL", forge.GITLAB_API, forge.parse_api_url) == "https://gitlab.com/api/v4"


def test_the_hosts_agents_may_reach_are_read_and_a_forbidden_one_stops_the_start(monkeypatch):
    monkeypatch.setenv("CLAUDE_AGENT_ALLOWED_HOSTS", "pypi.org, *.npmjs.org,10.0.5.7:8081")
    allowed = envparsed("CLAUDE_AGENT_ALLOWED_HOSTS", "", egress.parse_allowed_hosts)
    assert str(allowed) == "pypi.org,*.npmjs.org,10.0.5.7:8081"
    monkeypatch.setenv("CLAUDE_AGENT_ALLOWED_HOSTS", "pypi.org,169.254.169.254")
    with pytest.raises(
        ImproperlyConfigured,
        match=re.escape(
            "CLAUDE_AGENT_ALLOWED_HOSTS: '169.254.169.254' is a link-local address (where cloud metadata services "
            "answer), which no agent may reach"
        ),
    ):
        envparsed("CLAUDE_AGENT_ALLOWED_HOSTS", "", egress.parse_allowed_hosts)


@pytest.mark.parametrize(
    "value",
    ["sonnet, --dangerously-skip-permissions", "-m", "opus haiku", "sonnet;rm"],
    ids=["flag", "dash", "space", "semicolon"],
)
def test_a_model_name_that_could_be_read_as_a_flag_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("CLAUDE_MODELS", value)
    with pytest.raises(ImproperlyConfigured, match=r"CLAUDE_MODELS: .* is not a model name"):
        envmodels("CLAUDE_MODELS")


def test_model_names_of_every_kind_are_read(monkeypatch):
    names = "sonnet, claude-sonnet-4-5-20250929,opus[1m],claude-3-5-haiku@20241022,us.anthropic.claude-3-7-sonnet-v1:0"
    monkeypatch.setenv("CLAUDE_MODELS", names)
    assert envmodels("CLAUDE_MODELS") == [name.strip() for name in names.split(",")]


OIDC_VARIABLES = (
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_AUTHORIZATION_ENDPOINT",
    "OIDC_TOKEN_ENDPOINT",
    "OIDC_USERINFO_ENDPOINT",
    "OIDC_JWKS_URI",
)


@pytest.fixture
def no_oidc(monkeypatch):
    for name in OIDC_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_sign_in_with_a_provider_is_off_unless_configured_and_read_whole(no_oidc):
    assert not envoidc().enabled
    no_oidc.setenv("OIDC_ISSUER", "https://id.example.com/realms/team/")
    no_oidc.setenv("OIDC_CLIENT_ID", "chat")
    no_oidc.setenv("OIDC_CLIENT_SECRET", "s3cret")
    read = envoidc()
    assert read.enabled and read.issuer == "https://id.example.com/realms/team/" and read.client_secret == "s3cret"
    assert read.endpoints is None  # discovered from the issuer when first needed
    for name in OIDC_VARIABLES[3:]:
        no_oidc.setenv(name, f"https://id.example.com/{name.lower()}")
    assert envoidc().endpoints["OIDC_JWKS_URI"] == "https://id.example.com/oidc_jwks_uri"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OIDC_ISSUER": "https://id.example.com"}, "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET are missing"),
        ({"OIDC_CLIENT_ID": "chat", "OIDC_CLIENT_SECRET": "x"}, "OIDC_ISSUER is missing"),
        (
            {
                "OIDC_ISSUER": "https://id.example.com",
                "OIDC_CLIENT_ID": "c",
                "OIDC_CLIENT_SECRET": "x",
                "OIDC_TOKEN_ENDPOINT": "https://id.example.com/token",
            },
            "OIDC_AUTHORIZATION_ENDPOINT, OIDC_USERINFO_ENDPOINT, OIDC_JWKS_URI missing",
        ),
        (
            {"OIDC_ISSUER": "http://id.example.com", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "x"},
            "OIDC_ISSUER must be an https:// URL",
        ),
    ],
)
def test_a_half_configured_provider_stops_the_start_naming_what_is_missing(no_oidc, env, says):
    for name, value in env.items():
        no_oidc.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(says)):
        envoidc()


def test_passwords_for_staff_only_without_a_provider_refuse_to_start(tmp_path):
    env = {name: value for name, value in os.environ.items() if name not in OIDC_VARIABLES}
    env.update(
        {"DJANGO_SETTINGS_MODULE": "project.settings", "APP_DATA_DIR": str(tmp_path), "LOCAL_PASSWORDS": "staff"}
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "LOCAL_PASSWORDS=staff needs sign-in with an identity provider" in done.stderr
