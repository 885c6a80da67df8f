"""Settings for the app, driven by environment variables.

Every variable has an embedded default that works with no set-up (SQLite, in-memory channel
layer, a data folder inside the project). The helpers below fail loudly on values they
cannot read, so a typo in production stops the start instead of being silently ignored.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from drivers import egress, forge

BASE_DIR = Path(__file__).resolve().parent.parent

# Generic Django classes (ModelAdmin[Task], QuerySet[Turn]) subscriptable at runtime, as the type checker sees them.
django_stubs_ext.monkeypatch()


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: str, *, minimum: int = 0) -> int:
    value = os.environ.get(name, default)
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def envfloat(name: str, default: str, *, minimum: float = 0.0) -> float:
    value = os.environ.get(name, default)
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def envpath(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def envchoice(name: str, default: str, *, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envmodels(name: str) -> list[str]:
    """Model names (``sonnet``, ``claude-sonnet-4-5``, ``opus[1m]``, a Bedrock id or ARN): each starts
    with a letter or digit, so that none can be read as a flag of the CLI."""
    models = envlist(name, "")
    for model in models:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,199}", model):
            raise ImproperlyConfigured(
                f"{name}: {model!r} is not a model name (letters, digits and . _ : @ / [ ] -, starting with a "
                "letter or digit; names are separated by commas)"
            )
    return models


def envprojects(name: str) -> dict[str, Path]:
    """Shared projects from ``key=/absolute/path,key2=/other/path`` (the key "default" is taken:
    it names each member's own folder under CLAUDE_WORKDIR)."""
    projects: dict[str, Path] = {}
    for item in envlist(name, ""):
        key, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not key or not path:
            raise ImproperlyConfigured(f"{name}: {item!r} is not KEY=/absolute/path (entries are separated by commas)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", key):
            raise ImproperlyConfigured(f"{name}: the key {key!r} may only hold letters, digits, '.', '_' and '-'")
        if key == "default":
            raise ImproperlyConfigured(
                f'{name}: "default" is each member\'s own folder under CLAUDE_WORKDIR; '
                "give the shared project another key"
            )
        if key in projects:
            raise ImproperlyConfigured(f"{name}: the key {key!r} is given twice")
        if not Path(path).expanduser().is_absolute():
            raise ImproperlyConfigured(f"{name}: the path of {key!r} must be absolute, not {path!r}")
        projects[key] = Path(path).expanduser().resolve()
    return projects


OIDC_ENDPOINT_VARIABLES = (
    "OIDC_AUTHORIZATION_ENDPOINT",
    "OIDC_TOKEN_ENDPOINT",
    "OIDC_USERINFO_ENDPOINT",
    "OIDC_JWKS_URI",
)


def _provider_url(name: str, value: str) -> str:
    """A provider's URL: https, or http only on this machine's loopback (a local provider)."""
    url = urlsplit(value)
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and loopback)):
        raise ImproperlyConfigured(
            f"{name} must be an https:// URL (http:// only on 127.0.0.1 or localhost), not {value!r}"
        )
    return value


@dataclass(frozen=True)
class OidcConfig:
    enabled: bool = False
    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    # None: read from the issuer's discovery document when first needed (the server starts while
    # the provider is down; a sign-in then says so).
    endpoints: dict[str, str] | None = None


def envoidc() -> OidcConfig:
    """Sign-in with an OpenID Connect provider, off unless configured. Set, it needs the issuer, the
    client's id and its secret; the endpoints are read from the issuer's discovery document unless
    all four are given. A half configuration stops the start, naming what is missing."""
    given = {name: os.environ.get(name, "").strip() for name in ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET")}
    endpoints = {name: os.environ.get(name, "").strip() for name in OIDC_ENDPOINT_VARIABLES}
    if not any(given.values()) and not any(endpoints.values()):
        return OidcConfig()
    if missing := [name for name, value in given.items() if not value]:
        raise ImproperlyConfigured(
            f"Sign-in with an identity provider is half configured: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (set OIDC_ISSUER, OIDC_CLIENT_ID and "
            "OIDC_CLIENT_SECRET, or none of them)"
        )
    if any(endpoints.values()) and not all(endpoints.values()):
        missing = [name for name, value in endpoints.items() if not value]
        raise ImproperlyConfigured(
            f"The provider's endpoints are half given: {', '.join(missing)} missing (give all four, "
            "or none to read them from <OIDC_ISSUER>/.well-known/openid-configuration)"
        )
    return OidcConfig(
        enabled=True,
        issuer=_provider_url("OIDC_ISSUER", given["OIDC_ISSUER"]),
        client_id=given["OIDC_CLIENT_ID"],
        client_secret=given["OIDC_CLIENT_SECRET"],
        endpoints={name: _provider_url(name, value) for name, value in endpoints.items()}
        if all(endpoints.values())
        else None,
    )


DATA_DIR = envpath("APP_DATA_DIR", BASE_DIR / "data")

DEBUG = envbool("DJANGO_DEBUG", "false")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    # A stable key per installation, so sessions survive a restart without any set-up.
    _key_file = DATA_DIR / "secret-key.txt"
    if _key_file.exists():
        SECRET_KEY = _key_file.read_text().strip()
    else:
        import secrets

        SECRET_KEY = secrets.token_urlsafe(50)
        _key_file.parent.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(SECRET_KEY)
        _key_file.chmod(0o600)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    # For its templates and static files: the API's docs page then needs no CDN.
    "ninja",
    # Login attempts throttled per account and per address.
    "axes",
    "chat",
    "tasks",
    "members",
    # Its management commands (`engine`): the composition root's own.
    "project",
    "team",
    "workspace",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # request.engine: the engine the composition root put in the ASGI scope (project/asgi.py).
    "chat.web.engine.EngineMiddleware",
    # Viewers run nothing: a page that would is refused with a 403 saying so (members/roles.py).
    "members.web.viewers.ViewerMiddleware",
    # Last, as its documentation asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

# What a member's own password must be (an invite's page, Change your password; not the passwords
# the app makes itself): Django's usual checks, 10 characters at least.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: it refuses a locked-out account or address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After AXES_FAILURE_LIMIT wrong passwords for one account, or from one address, logins are
# refused for AXES_COOLOFF_TIME; a right password then resets the count.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5", minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", "15", minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
# Behind a reverse proxy that sets X-Forwarded-For, the number of proxies in front of the app.
AXES_IPWARE_PROXY_COUNT = envint("AXES_PROXY_COUNT", "0") or None
AXES_VERBOSE = False

# No inline scripts or styles anywhere: scripts and styles come from the app's own static files.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind HTTPS (DJANGO_HTTPS=true, usually a TLS-terminating proxy that sets X-Forwarded-Proto):
# redirect plain HTTP, HSTS, cookies only over HTTPS.
HTTPS = envbool("DJANGO_HTTPS", "false")
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", "31536000", minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "true")
    SECURE_HSTS_PRELOAD = envbool("DJANGO_HSTS_PRELOAD", "false")

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.web.context_processors.app",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", "0"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Turns write events while pages read them: WAL and a busy timeout keep SQLite from
    # answering "database is locked" under that mix.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    # Tests use a file too (not SQLite's shared in-memory database, whose table locks ignore the
    # busy timeout): turns write from the runtime's own threads while requests read.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get("APP_TEST_DB") or str(
        Path(tempfile.gettempdir()) / f"claude-chat-test-{os.getpid()}.sqlite3"
    )


def redis_channel_layer(url: str, *, max_connections: int = 2000) -> dict[str, object]:
    """Channels' Redis layer on ``url``, set up for many sockets."""
    host = {
        "address": url,
        # redis-py gives up reading after socket_timeout (5 s by default), and channels-redis
        # waits for messages with blocking pops of 5 s: at that default every socket of the
        # process failed after five quiet seconds. Reads may take longer than a pop; connecting may not.
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
        # redis-py refuses a call once its pool has this many connections in use (100 by
        # default): a reconnect storm joins many sockets to their groups at once.
        "max_connections": max_connections,
    }
    return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}


REDIS_URL = os.environ.get("REDIS_URL", "")

# Where turns run (README, "Running a cluster"). "local": inside the web server, as a newcomer's
# `scripts/run` needs nothing else. "cluster": on engine processes (`scripts/manage engine`) through a
# PostgreSQL job queue (procrastinate), so web processes hold no turn and may restart at will.
CLAUDE_ENGINE = envchoice("CLAUDE_ENGINE", "local", choices=("local", "cluster"))
# This machine's name among the engines (a queue of its own, its placements, its recovery).
CLAUDE_NODE_ID = envstr("CLAUDE_NODE_ID", "") or socket.gethostname()
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", CLAUDE_NODE_ID):
    raise ImproperlyConfigured(
        f"CLAUDE_NODE_ID must be 1 to 63 letters, digits, '.', '_' or '-' (starting with a letter or digit), "
        f"not {CLAUDE_NODE_ID!r}"
    )
# Seconds between an engine's heartbeats; after CLAUDE_NODE_DEAD_AFTER seconds without one its turns
# are interrupted and its sessions go to the others. An engine that could not beat for half that time
# ends its own CLI processes first, so no two engines ever run one transcript.
CLAUDE_NODE_HEARTBEAT = envfloat("CLAUDE_NODE_HEARTBEAT", "2", minimum=0.2)
CLAUDE_NODE_DEAD_AFTER = envfloat("CLAUDE_NODE_DEAD_AFTER", "20", minimum=1)
if CLAUDE_NODE_DEAD_AFTER < 3 * CLAUDE_NODE_HEARTBEAT:
    raise ImproperlyConfigured(
        f"CLAUDE_NODE_DEAD_AFTER ({CLAUDE_NODE_DEAD_AFTER:g}) must be at least three CLAUDE_NODE_HEARTBEAT "
        f"({CLAUDE_NODE_HEARTBEAT:g}): a node would be taken for dead between two of its heartbeats"
    )
# Seconds a draining engine (SIGTERM, `engine --drain`) lets running turns finish before it interrupts them.
CLAUDE_DRAIN_GRACE = envfloat("CLAUDE_DRAIN_GRACE", "60", minimum=0)
if CLAUDE_ENGINE == "cluster":
    _missing = []
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://", "pgsql://")):
        _missing.append("DATABASE_URL=postgres://user:password@host/db (the turns' queue lives in PostgreSQL)")
    if not REDIS_URL:
        _missing.append("REDIS_URL=redis://host:6379/0 (answers stream from engines to every web process)")
    if _missing:
        raise ImproperlyConfigured(
            "CLAUDE_ENGINE=cluster needs " + " and ".join(_missing) + ". Set them, or leave CLAUDE_ENGINE unset "
            "to run everything in one process."
        )
    # Its migrations make the job queue's tables; the admin shows its jobs.
    INSTALLED_APPS.append("procrastinate.contrib.django")
    PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "procrastinate_tasks"  # (none: the engine registers its jobs)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(REDIS_URL, max_connections=envint("REDIS_MAX_CONNECTIONS", "2000", minimum=1))
    }
else:
    # Channels' own, minus a walk over every socket on every message (see project/layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "project.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# Serve straight from static/ (no collectstatic step in the run command).
WHITENOISE_USE_FINDERS = True
# Files browsers ask for at the site's root: /favicon.ico (the admin's pages and other clients look there).
WHITENOISE_ROOT = BASE_DIR / "static" / "root"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", "true" if HTTPS else "false")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}


def _default_cli() -> str:
    """The CLI bundled with the pinned Agent SDK (the version the app is tested with), found
    without importing the SDK; else `claude` on PATH."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "_bundled" / "claude"
        if bundled.exists():
            return str(bundled)
    return shutil.which("claude") or "claude"


# The Claude Code CLI and how the app runs it.
CLAUDE_CLI = envstr("CLAUDE_CLI", "") or _default_cli()
# Each member works in a folder of their own under CLAUDE_WORKDIR (CLAUDE_WORKDIR/<user id>) unless a
# chat is started in a shared project; each chat's CLI keeps its config and transcript in a folder of
# its own under CLAUDE_CONFIG_DIR (CLAUDE_CONFIG_DIR/<user id>/<chat uuid>), which only that chat's
# agent sees.
CLAUDE_WORKDIR = envpath("CLAUDE_WORKDIR", DATA_DIR / "workdir")
CLAUDE_CONFIG_DIR = envpath("CLAUDE_CONFIG_DIR", DATA_DIR / "claude")
# Every CLI process runs inside bubblewrap ("bwrap"), which shows it only its working directory, its
# own config folder, the CLI and the system's programs; "off" runs it as the server itself (staff
# see a warning on every page).
CLAUDE_SANDBOX = envchoice("CLAUDE_SANDBOX", "bwrap", choices=("bwrap", "off"))
CLAUDE_BWRAP = envstr("CLAUDE_BWRAP", "bwrap")
# The only variables of the server's environment the CLI gets (names, or prefixes ending in "*"):
# its API credentials and settings; the server's own secrets stay out.
CLAUDE_ENV_PASSTHROUGH = envlist(
    "CLAUDE_ENV_PASSTHROUGH", "ANTHROPIC_*,CLAUDE_CODE_*,DISABLE_*,HTTP_PROXY,HTTPS_PROXY,NO_PROXY,LANG,LC_ALL,TZ"
)
CLAUDE_ARCHIVE_DIR = envpath("CLAUDE_ARCHIVE_DIR", DATA_DIR / "archive")
CLAUDE_MAX_CONCURRENT = envint("CLAUDE_MAX_CONCURRENT", "10", minimum=1)
CLAUDE_TURN_TIMEOUT = envfloat("CLAUDE_TURN_TIMEOUT", "120", minimum=0.1)
# A chat that has just run a turn keeps its CLI process this many seconds for the next turn; at
# most CLAUDE_MAX_WARM processes stay warm (the least recently used is closed first).
CLAUDE_WARM_IDLE = envfloat("CLAUDE_WARM_IDLE", "600", minimum=1)
CLAUDE_MAX_WARM = envint("CLAUDE_MAX_WARM", "8", minimum=0)
# A chat's page (the New chat page too) starts the process its first message will take while its
# member types; closed if nothing is sent within this many seconds. 0: never started ahead.
CLAUDE_PREWARM_SECONDS = envfloat("CLAUDE_PREWARM_SECONDS", "60", minimum=0)
# A permission prompt nobody answers within this many seconds is denied (the agent is told so).
CLAUDE_PERMISSION_TIMEOUT = envfloat("CLAUDE_PERMISSION_TIMEOUT", "300", minimum=1)
# At most this many file edits (Write, Edit, MultiEdit, NotebookEdit) run at once across all chats
# and tasks; the others wait for a slot ("waiting for a file slot").
CLAUDE_MAX_FILE_OPERATIONS = envint("CLAUDE_MAX_FILE_OPERATIONS", "10", minimum=1)
# The permission mode of chat turns: "default" asks the person in the browser for each tool call
# the CLI does not allow by itself (Allow / Deny / Always allow in this chat).
CLAUDE_PERMISSION_MODE = envstr("CLAUDE_PERMISSION_MODE", "default")
CLAUDE_MAX_MESSAGE_CHARS = envint("CLAUDE_MAX_MESSAGE_CHARS", "100000", minimum=1)
# The models a member may pick per chat ("sonnet,opus,haiku" or full model names; the first is the
# default of a new chat). Empty: no picker, the CLI's own default model.
CLAUDE_MODELS = envmodels("CLAUDE_MODELS")
# Files attached to a message are saved in the chat's working directory (its "attachments" folder),
# each at most this many MB; images among them (PNG, JPEG, GIF, WebP, at most 5 MB as the API takes)
# also reach the model as images.
CLAUDE_MAX_ATTACHMENT_MB = envfloat("CLAUDE_MAX_ATTACHMENT_MB", "10", minimum=0.001)
# All the files a member has attached, in all their chats, at most this many MB (as uploaded; a
# deleted chat's files go with it). More are refused, saying how much is used.
CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER = envfloat("CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER", "500", minimum=0.001)
# Fairness between members: at most this many of a member's messages wait to run at once (more are
# refused with "too many waiting"), and at most this many websockets of a member are open at once.
CLAUDE_MAX_QUEUED_PER_MEMBER = envint("CLAUDE_MAX_QUEUED_PER_MEMBER", "5", minimum=1)
CLAUDE_MAX_SOCKETS_PER_MEMBER = envint("CLAUDE_MAX_SOCKETS_PER_MEMBER", "20", minimum=1)
# The workspace beside a chat or task (files, changes, a terminal): an upload is at most this many MB
# (and counts against nothing else: it lands in a folder the member works in, as the agent's files do).
CLAUDE_WORKSPACE_UPLOAD_MB = envfloat("CLAUDE_WORKSPACE_UPLOAD_MB", "25", minimum=0.001)
# A terminal nobody typed in nor watched for this many seconds ends; a member may keep this many open.
CLAUDE_TERMINAL_IDLE_SECONDS = envfloat("CLAUDE_TERMINAL_IDLE_SECONDS", "900", minimum=1)
CLAUDE_MAX_TERMINALS_PER_MEMBER = envint("CLAUDE_MAX_TERMINALS_PER_MEMBER", "3", minimum=0)
# Search: a word counts in at most this many of a person's newest messages that hold it (and in titles),
# so that a word in nearly every message costs no more than a rarer one (see chat/search.py).
CLAUDE_SEARCH_NEWEST = envint("CLAUDE_SEARCH_NEWEST", "1000", minimum=1)
# Shared projects ("key=/path,key2=/path"): chats (and the HTTP API's "projectKey") and tasks may work in
# them, as the admin allows (Project access); "default" is each member's own folder.
CLAUDE_PROJECTS = envprojects("CLAUDE_PROJECTS")
# Seconds an API call waits for its turn to start (behind earlier turns of its session, or
# for a free CLI slot) before it gives up and withdraws the turn.
CLAUDE_API_BUSY_WAIT = envfloat("CLAUDE_API_BUSY_WAIT", "30", minimum=0.1)
# Set by the run command when it starts the offline stand-in instead of a real API.
DEMO_MODE = envbool("APP_DEMO_MODE", "false")

# Autonomous tasks in git worktrees (chat/tasks). A task's project is one of CLAUDE_PROJECTS
# ("default" is CLAUDE_WORKDIR); it must be a git repository with a commit.
CLAUDE_MAX_TASKS = envint("CLAUDE_MAX_TASKS", "5", minimum=1)
# 0: no budget. Otherwise new task starts wait while the last minute's turns used more tokens.
CLAUDE_MAX_TOKENS_PER_MINUTE = envint("CLAUDE_MAX_TOKENS_PER_MINUTE", "0")
# Tools a task may use when skip-permissions mode is off (with --permission-mode acceptEdits).
CLAUDE_TASK_ALLOWED_TOOLS = envlist(
    "CLAUDE_TASK_ALLOWED_TOOLS", "Read,Edit,Write,MultiEdit,NotebookEdit,Glob,Grep,LS,TodoWrite"
)
CLAUDE_TASK_PERMISSION_MODE = envstr("CLAUDE_TASK_PERMISSION_MODE", "acceptEdits")
CLAUDE_TASK_TIMEOUT = envfloat("CLAUDE_TASK_TIMEOUT", "3600", minimum=1)
CLAUDE_TASK_STATE_DIR = envpath("CLAUDE_TASK_STATE_DIR", DATA_DIR / "tasks")


def envparsed[T](name: str, default: str, parse: Callable[[str], T]) -> T:
    """A value read by ``parse``, which raises ValueError saying what is wrong with it."""
    try:
        return parse(os.environ.get(name, default))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def envremotes(name: str, projects: dict[str, Path]) -> dict[str, forge.RemoteSpec]:
    """Remotes of shared projects, ``key=REMOTE[:FORGE[:PATH]],...`` (:func:`drivers.forge.parse_remotes`)."""
    remotes = envparsed(name, "", forge.parse_remotes)
    if unknown := sorted(set(remotes) - set(projects)):
        raise ImproperlyConfigured(
            f"{name}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among "
            "CLAUDE_PROJECTS (only shared projects open pull requests)"
        )
    return remotes


# Pull requests of tasks (README, "Pull requests"): per shared project "key=REMOTE[:FORGE[:PATH]]"
# (e.g. "api=origin:github:acme/api,web=upstream:gitlab:acme/web"); a project left out uses its
# repository's "origin" when that URL's host tells the forge. Tokens: CLAUDE_FORGE_TOKEN_<KEY>,
# read from the environment when used.
CLAUDE_PROJECT_REMOTES = envremotes("CLAUDE_PROJECT_REMOTES", CLAUDE_PROJECTS)
CLAUDE_GITHUB_API_URL = envparsed("CLAUDE_GITHUB_API_URL", forge.GITHUB_API, forge.parse_api_url)
CLAUDE_GITLAB_API_URL = envparsed("CLAUDE_GITLAB_API_URL", forge.GITLAB_API, forge.parse_api_url)
CLAUDE_FORGE_TIMEOUT = envfloat("CLAUDE_FORGE_TIMEOUT", "20", minimum=1)


def envprojectkeys(name: str, projects: dict[str, Path]) -> frozenset[str]:
    """Keys of shared projects, comma-separated (``*``: every shared project)."""
    keys = envlist(name, "")
    if keys == ["*"]:
        return frozenset(projects)
    if unknown := sorted(set(keys) - set(projects)):
        raise ImproperlyConfigured(
            f"{name}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among CLAUDE_PROJECTS "
            "(list shared projects' keys, comma-separated, or * for all of them)"
        )
    return frozenset(keys)


# Shared projects whose tasks send their pull request's new review comments and failed checks to
# the agent by themselves, as soon as the app reads them from the forge (README, "Pull requests").
CLAUDE_PR_FEEDBACK_AUTO = envprojectkeys("CLAUDE_PR_FEEDBACK_AUTO", CLAUDE_PROJECTS)
# The hosts a sandboxed agent may reach besides the model API, through the server's egress proxy
# ("pypi.org,files.pythonhosted.org,*.npmjs.org,registry.example.com:8443,10.0.5.7:8081"): a bare
# host allows ports 80 and 443; a name is never followed to a loopback, link-local or private
# address (list an internal host by its address). Empty: the model API only.
CLAUDE_AGENT_ALLOWED_HOSTS = envparsed(egress.SETTING, "", egress.parse_allowed_hosts)

# Sign-in with the team's identity provider (OpenID Connect, through mozilla-django-oidc; see
# members/web/oidc.py). Off unless OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are set.
_oidc = envoidc()
OIDC_ENABLED = _oidc.enabled
OIDC_ISSUER = _oidc.issuer
OIDC_RP_CLIENT_ID = _oidc.client_id
OIDC_RP_CLIENT_SECRET = _oidc.client_secret
OIDC_ENDPOINTS = _oidc.endpoints
OIDC_PROVIDER_NAME = envstr("OIDC_PROVIDER_NAME", "your identity provider").strip() or "your identity provider"
# Who may become a member by signing in: "open" (anyone the provider vouches for), "invited" (an
# email with a live invite, or whoever followed an invite link; the default) or "off" (existing
# members only).
OIDC_SIGN_UP = envchoice("OIDC_SIGN_UP", "invited", choices=("open", "invited", "off"))
# ID tokens signed with the provider's published keys only; PKCE as well as the nonce and state.
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "members:oidc-callback"
OIDC_TIMEOUT = envint("OIDC_TIMEOUT", "10", minimum=1)
# "staff": only staff may log in with a password; everyone else signs in with the provider.
LOCAL_PASSWORDS = envchoice("LOCAL_PASSWORDS", "all", choices=("all", "staff"))
if LOCAL_PASSWORDS == "staff" and not OIDC_ENABLED:
    raise ImproperlyConfigured(
        "LOCAL_PASSWORDS=staff needs sign-in with an identity provider (OIDC_ISSUER, OIDC_CLIENT_ID, "
        "OIDC_CLIENT_SECRET): without it no member but staff could log in"
    )
