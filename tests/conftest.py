"""Fixtures shared by the whole suite: the offline stand-in and the real Claude Code CLI."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import claude_agent_sdk
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import make_password
from django.utils import timezone

import runtime
from devtools.stub_api import StubServer
from project import runtime as composition
from tests.browser_problems import Problems
from tests.factories import make_user
from tests.fake_session import FakeCli
from tests.forge_standin import ForgeStandIn
from tests.processes import stop
from tests.task_helpers import bare_remote, init_repo

pytest_plugins = ["tests.hangs", "tests.checkout"]

ROOT = Path(__file__).resolve().parent.parent
# The Claude Code CLI bundled with the pinned Agent SDK: what the app runs by default.
CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"

# A test that uses one of these runs the real CLI (the live app runs it too): it gets the real_cli
# marker by itself, so `-m "not real_cli"` leaves out every such test, hand-marked or not.
REAL_CLI_FIXTURES = frozenset({"claude_env", "live_app", "stub_api"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_CLI_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_cli)


# The longest file (PostgreSQL, Redis, two web and three engine processes, started and killed again
# and again: 4 minutes on one worker) is handed out first. Each file runs whole on one worker
# (--dist loadfile), and handed out in its turn it ran last, alone, the other cores idle for over a
# minute. Only this one: all the long files first ran every cluster and browser file at once.
FIRST = "tests/project/test_cluster.py"


class _LongestFileFirst:
    @pytest.hookimpl(trylast=True)  # after pytest-django's own ordering
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=lambda item: not item.nodeid.startswith(FIRST + "::"))  # stable: the rest keep their order


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_LongestFileFirst(), "longest-file-first")


def pytest_collection_finish(session: pytest.Session) -> None:
    # What is alive once the tests are collected (the app, its libraries, the items) lives to the
    # end: frozen, the cyclic collector stops walking it again at every full collection (a profile
    # of a whole run put a tenth of the workers' time in the collector).
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def stub_api():
    """The Messages-API stand-in on 127.0.0.1, for the whole run."""
    server = StubServer().start()
    yield server
    server.stop()


@dataclass
class ClaudeEnv:
    cli: Path
    config_dir: Path
    workdir: Path
    archive_dir: Path
    api_url: str
    env: dict[str, str]

    def transcript(self, session: object) -> Path:
        """The CLI transcript of a chat (a Session, or its id): in the chat's own config folder."""
        path = getattr(session, "transcript_path", "")
        if path:
            return Path(path)
        sid = str(session).lower()
        found = sorted(self.config_dir.glob(f"**/projects/*/{sid}.jsonl"))
        return found[0] if found else self.config_dir / "not-written" / f"{sid}.jsonl"


def claude_process_env(stub_url: str, config_dir: Path) -> dict[str, str]:
    home = config_dir.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        # The CLI's Bash tool sources ~/.bashrc; a machine's own (pyenv rehash and the like)
        # can stall it or leave locks behind when a turn is killed. Tests get an empty home.
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": stub_url,
        "ANTHROPIC_API_KEY": "test-key",
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL cluster on 127.0.0.1 for the whole run; its URL."""
    from devtools import servers

    if reason := servers.postgres_available():
        pytest.skip(f"PostgreSQL is not installed: {reason}")
    with servers.postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url():
    """A throw-away Redis on 127.0.0.1 for the whole run; its URL."""
    from devtools import servers

    if reason := servers.redis_available():
        pytest.skip(f"Redis is not installed: {reason}")
    with servers.redis() as url:
        yield url


@dataclass
class OutsideHost:
    """An HTTP server on a network of its own (not loopback, not the machine's): as an allowed host on
    the company's network would be. ``marker.txt`` holds ``marker``."""

    url: str
    host: str
    port: int
    marker: str


@pytest.fixture(scope="session")
def outside_host(tmp_path_factory):
    from devtools import servers

    if reason := servers.netns_available():
        pytest.skip(f"No server on a network of its own: {reason}")
    folder = tmp_path_factory.mktemp("outside")
    marker = f"OUTSIDE-{os.getpid()}-MARKER"
    (folder / "marker.txt").write_text(marker + "\n")
    with servers.outside_http(folder) as url:
        host, port = url.removeprefix("http://").split(":")
        yield OutsideHost(url=url, host=host, port=int(port), marker=marker)


@pytest.fixture
def claude_env(stub_api, tmp_path, settings, monkeypatch) -> ClaudeEnv:
    """The REAL pinned CLI, pointed at the stand-in, with its own config and work folders."""
    if not os.access(CLAUDE, os.X_OK):
        pytest.fail(f"The pinned Claude Code CLI is missing at {CLAUDE}: run scripts/test, which installs it.")
    config_dir, workdir, archive_dir = tmp_path / "claude-config", tmp_path / "work", tmp_path / "archive"
    workdir.mkdir()
    env = claude_process_env(stub_api.url, config_dir)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.CLAUDE_CLI = str(CLAUDE)
    settings.CLAUDE_CONFIG_DIR = config_dir
    settings.CLAUDE_WORKDIR = workdir
    settings.CLAUDE_ARCHIVE_DIR = archive_dir
    settings.DATA_DIR = tmp_path / "data"
    return ClaudeEnv(
        cli=CLAUDE, config_dir=config_dir, workdir=workdir, archive_dir=archive_dir, api_url=stub_api.url, env=env
    )


@pytest.fixture
async def rt(request, tmp_path_factory) -> AsyncIterator[runtime.LocalEngine]:
    """The server's engine (its node's process slots and warm processes, the turn queues, the task
    scheduler, the agents' egress proxy) on this test's event loop, built as the server builds it;
    every turn and task of the test runs through it. Its limits come from the settings, or from
    ``@pytest.mark.parametrize("rt", [{"max_processes": 2}], indirect=True)``. A test that also asks
    for ``fake_cli`` runs its turns on that stand-in instead of the real CLI."""
    params = {"egress_dir": tmp_path_factory.mktemp("egress"), **getattr(request, "param", {})}
    if "fake_cli" in request.fixturenames:
        params["factory"] = request.getfixturevalue("fake_cli")
    if django_settings.CLAUDE_ENGINE == "cluster":
        # The same tests on the cluster engine (tests/project/test_cluster_same_*.py run them so):
        # an engine node serving in this process, its jobs queued in the test's PostgreSQL.
        async for engine in cluster_engine(params):
            yield engine
        return
    engine = await composition.start(composition.build(**params), recover_first=False)
    yield engine
    await composition.stop(engine)


async def cluster_engine(params: dict) -> AsyncIterator[runtime.Engine]:
    from runtime.cluster import serve

    engine = composition.build_cluster(with_node=True, **params)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(engine, stop=stop, concurrency=16))
    from chat.models import Node

    while not await Node.objects.filter(pk=engine.node_id, dead=False).aexists():
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        yield engine
    finally:
        stop.set()
        await serving


@pytest.fixture
def fake_cli(tmp_path, settings) -> FakeCli:
    """Scripted stand-ins for the CLI's processes (tests/fake_session.py), for tests of orderings,
    limits and statuses the real CLI adds nothing to; the chats' folders in this test's tmp_path."""
    settings.CLAUDE_CONFIG_DIR = tmp_path / "claude-config"
    settings.CLAUDE_WORKDIR = tmp_path / "work"
    settings.CLAUDE_ARCHIVE_DIR = tmp_path / "archive"
    settings.DATA_DIR = tmp_path / "data"
    (tmp_path / "work").mkdir(exist_ok=True)
    return FakeCli()


# ---------------------------------------------------------------------------------------
# Tasks: a real git repository as the default project


def _own_repository(workdir: Path, settings, tmp_path: Path, user) -> Path:
    own = init_repo(workdir / str(user.pk))
    settings.CLAUDE_TASK_STATE_DIR = tmp_path / "task-state"
    settings.CLAUDE_TASK_ALLOWED_TOOLS = ["Read", "Write", "Edit", "Bash"]
    settings.CLAUDE_MAX_TOKENS_PER_MINUTE = 0
    return own


@pytest.fixture
def repo(claude_env, settings, tmp_path, user) -> Path:
    """The ``user``'s own folder (their tasks' "default" project) as a git repository on branch main;
    tasks may also run shell commands."""
    return _own_repository(claude_env.workdir, settings, tmp_path, user)


@pytest.fixture
def fake_repo(fake_cli, settings, tmp_path, user) -> Path:
    """The same, for tasks whose turns run on the stand-in process (``fake_cli``)."""
    return _own_repository(Path(settings.CLAUDE_WORKDIR), settings, tmp_path, user)


@pytest.fixture
def shared_repo(claude_env, settings, tmp_path) -> Path:
    """A shared project "team" (a git repository) open to every member."""
    from chat.models import ProjectAccess

    team = init_repo(tmp_path / "team")
    settings.CLAUDE_PROJECTS = {"team": team}
    ProjectAccess.objects.create(project="team", everyone=True)
    return team


@pytest.fixture
def forge():
    """The stand-in for GitHub's and GitLab's REST APIs on 127.0.0.1 (tests/forge_standin.py);
    every request it got must have been one their documentation defines."""
    server = ForgeStandIn().start()
    yield server
    server.stop()
    assert not server.violations, server.violations


@pytest.fixture
def team_remote(shared_repo, forge, settings, monkeypatch, tmp_path) -> Path:
    """The shared project "team" with a remote "origin" (a bare repository in tmp_path), which the
    stand-in serves as GitHub's acme/widgets (and GitLab's acme/tools/widgets); CLAUDE_PROJECT_REMOTES
    names it as on GitHub, and the project's token is in the environment."""
    from drivers.forge import RemoteSpec

    bare = bare_remote(tmp_path / "widgets.git", shared_repo)
    forge.add_repository("github", "acme/widgets", bare)
    forge.add_repository("gitlab", "acme/tools/widgets", bare)
    settings.CLAUDE_GITHUB_API_URL = forge.github_api
    settings.CLAUDE_GITLAB_API_URL = forge.gitlab_api
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("origin", "github", "acme/widgets")}
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", forge.token)
    return bare


@pytest.fixture
async def scheduler(repo, rt) -> runtime.Engine:
    """The engine that schedules the tasks (its ``idle()`` waits for them), in the default project."""
    return rt


@pytest.fixture
async def user(db):
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_user)()


# ---------------------------------------------------------------------------------------
# The real server, for browser tests


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveApp:
    base_url: str
    env: dict[str, str]
    data_dir: Path

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def create_user(self, *, username: str, password: str, staff: bool = False) -> int:
        """A user of the live app; returns its id.

        Written straight into the app's SQLite database, with the password hashed by the same
        settings (tests.settings) in this process: a Django process per user cost 1.2 s of CPU, some
        70 times a run, on cores the run keeps busy. Nothing in the app acts on a new user."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite:///"):
            row = (
                make_password(password),
                staff,
                username,
                "",
                "",
                "",
                staff,
                True,
                str(timezone.now().replace(tzinfo=None)),
            )
            with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as db, db:
                added = db.execute(
                    "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, "
                    "is_staff, is_active, date_joined) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                return int(added.lastrowid or 0)
        code = (
            "import os; from django.contrib.auth import get_user_model as g; "
            "u = g().objects.create_user(os.environ['U'], password=os.environ['P']); "
            "u.is_staff = u.is_superuser = os.environ['S'] == '1'; u.save(); print(u.pk)"
        )
        out = self.manage("shell", "-c", code, extra_env={"U": username, "P": password, "S": "1" if staff else "0"})
        return int(out.split()[-1])

    def serve(self) -> subprocess.Popen[bytes]:
        """Start the app as a plain `daphne project.asgi:application` (as systemd or a container would)
        and wait until it answers; its output goes to server.log in its data folder."""
        port = int(self.base_url.rsplit(":", 1)[1])
        with open(self.data_dir / "server.log", "ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.base_url}/accounts/login/", timeout=2)
                return server
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    raise AssertionError(
                        "the server did not start:\n" + (self.data_dir / "server.log").read_text()
                    ) from None
                time.sleep(0.2)

    def own_folder(self, user_id: int) -> Path:
        """A member's own working directory on the live app (their tasks' default repository)."""
        return self.data_dir / "work" / str(user_id)


@pytest.fixture(scope="session")
def live_app(stub_api, tmp_path_factory):
    """The app served by Daphne in a subprocess, as the run command serves it, with its own
    SQLite file, work folder and CLI config, and the real CLI against the stand-in."""
    with serving(stub_api, tmp_path_factory.mktemp("live-app")) as app:
        yield app


@contextmanager
def serving(stub_api, data: Path, *, env: dict[str, str] | None = None) -> Iterator[LiveApp]:
    """The app served from the data folder ``data`` (see ``live_app``) until the block ends; ``env``
    adds to (or overrides) its environment, e.g. ``{"APP_DEMO_MODE": "1"}``."""
    if not os.access(CLAUDE, os.X_OK):
        pytest.fail(f"The pinned Claude Code CLI is missing at {CLAUDE}: run scripts/test, which installs it.")
    (data / "work").mkdir()
    # A shared project, open only to whom a test lets in (Project access).
    init_repo(data / "team")
    (data / "staticfiles").mkdir()
    port = _free_port()
    extra = env
    env = {
        **os.environ,
        **claude_process_env(stub_api.url, data / "claude-config"),
        "APP_DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "CLAUDE_WORKDIR": str(data / "work"),
        "CLAUDE_PROJECTS": f"team={data / 'team'}",
        "CLAUDE_ARCHIVE_DIR": str(data / "archive"),
        # The product's settings with a cheap password hasher (users are made and log in quickly);
        # its data folders are the ones given here.
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CLAUDE_CLI": str(CLAUDE),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_DEBUG": "false",
        # The stand-in answers "which model" with the model a request asked for.
        "CLAUDE_MODELS": "claude-stand-in-small,claude-stand-in-large",
        **(extra or {}),
    }
    app = LiveApp(base_url=f"http://127.0.0.1:{port}", env=env, data_dir=data)
    _migrated_database(app)
    server = app.serve()
    try:
        yield app
    finally:
        stop(server)


_TEMPLATE_DATABASE: list[Path] = []


def _migrated_database(app: LiveApp) -> None:
    """The app's empty database, migrated: the first app of this worker runs ``migrate`` (as a fresh
    machine does; 3.5 s of CPU), the later ones start from a copy of what it made."""
    database = app.data_dir / "db.sqlite3"
    if _TEMPLATE_DATABASE:
        _copy_database(_TEMPLATE_DATABASE[0], database)
        return
    app.manage("migrate", "--run-syncdb", "--noinput", "-v", "0")
    template = app.data_dir.parent / f"migrated-{os.getpid()}.sqlite3"
    _copy_database(database, template)
    _TEMPLATE_DATABASE.append(template)


def _copy_database(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as read, closing(sqlite3.connect(target)) as write:
        read.backup(write)


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright for Python (no browser download).

    Per module, not per run, so Playwright's own event loop is closed before the async
    tests of other modules run in this thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def problems() -> Iterator[Problems]:
    """What went wrong in this test's browser pages (tests/browser_problems.py): the test fails on any
    of it, naming each, unless it allowed it."""
    found = Problems()
    yield found
    unexpected = found.unexpected()
    assert unexpected == [], "the browser reported:\n" + "\n".join(unexpected)


@pytest.fixture
def new_context(browser, problems):
    """``new_context(**options)``: a fresh browser context whose pages are watched as ``page``'s are."""
    made: list = []

    def make(**options):
        context = problems.watch(browser.new_context(**options))
        context.set_default_timeout(15_000)
        made.append(context)
        return context

    yield make
    for context in made:
        problems.settle(context)
        context.close()


@pytest.fixture
def page(new_context):
    """A page of a fresh browser context. The test fails on any console error, uncaught exception,
    Content-Security-Policy violation or htmx error event of any page it opened (see ``problems``)."""
    return new_context().new_page()
