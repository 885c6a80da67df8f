"""What the server's own start does: it runs the tasks the last run left queued, before anyone
opens a page, and recovers from a run that was killed mid-turn."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.chat.services.test_turns import conversation_forks
from tests.conftest import ROOT, LiveApp, _free_port
from tests.processes import assert_all_gone, stop
from tests.task_helpers import git

pytestmark = [pytest.mark.real_cli]


def last_commit(repo: Path, branch: str) -> str:
    """The subject of the branch's newest commit; empty while the branch does not exist yet."""
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%s", branch, "--"], capture_output=True, text=True
    )
    return done.stdout.strip()


def test_queued_tasks_start_when_the_server_starts_without_a_request(live_app, tmp_path):
    data = tmp_path / "app"
    workdir = data / "work"
    workdir.mkdir(parents=True)
    port = _free_port()
    env = {
        **live_app.env,
        "APP_DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "CLAUDE_WORKDIR": str(workdir),
        "CLAUDE_ARCHIVE_DIR": str(data / "archive"),
    }
    app = LiveApp(base_url=f"http://127.0.0.1:{port}", env=env, data_dir=data)
    app.manage("migrate", "--run-syncdb", "--noinput", "-v", "0")
    # Starting nothing here leaves the task queued, as a server that stopped before starting it does.
    task_id, user_id = map(
        int,
        app.manage(
            "shell",
            "-v",
            "0",
            "-c",
            (
                "import asyncio; from django.contrib.auth import get_user_model; from project import runtime as composition; "
                "from tasks import services; engine = composition.build(); engine.kick_tasks = lambda: None; "
                "user = get_user_model().objects.create_user('rex'); "
                "task = asyncio.run(services.create_task(engine=engine, user=user, prompt='write after.txt: started by itself', title='Left queued')); "
                "print(task.pk, user.pk)"
            ),
        ).split(),
    )
    work = workdir / str(user_id)  # rex's own folder, their tasks' default repository

    log_path = data / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            # The run ends with a commit titled like the task on its branch.
            while last_commit(work, f"auto-claude/{task_id}") != "Left queued":
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the queued task did not run:\n" + log_path.read_text()
                time.sleep(0.3)
        finally:
            stop(server)
    assert git(work, "show", f"auto-claude/{task_id}:after.txt") == "started by itself\n"
    assert "GET " not in log_path.read_text()


def _post_chat(app: LiveApp, token: str, session_id: str, message: str, timeout: float = 60) -> dict:
    request = urllib.request.Request(
        f"{app.base_url}/api/analysis/chat",
        method="POST",
        data=json.dumps({"sessionId": session_id, "message": message}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _turn(db: Path, prompt: str) -> tuple[str, int | None] | None:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT status, pid FROM chat_turn WHERE prompt = ?", (prompt,)).fetchone()


def test_a_killed_server_started_again_plainly_leaves_no_cli_no_stuck_turn_and_no_fork(live_app, tmp_path):
    """SIGKILL of the server mid-turn, then a plain `daphne project.asgi:application` start (as systemd
    or a container would, without the set-up command): the CLI died with the server, the turn is
    marked interrupted by the server's own start, and the next turn remembers, unforked."""
    data = tmp_path / "app"
    (data / "work").mkdir(parents=True)
    (data / "staticfiles").mkdir()
    env = {
        **live_app.env,
        "APP_DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "CLAUDE_WORKDIR": str(data / "work"),
        "CLAUDE_ARCHIVE_DIR": str(data / "archive"),
    }
    app = LiveApp(base_url=f"http://127.0.0.1:{_free_port()}", env=env, data_dir=data)
    app.manage("migrate", "--noinput", "-v", "0")
    app.create_user(username="kim", password="pw-kim-123")
    token = app.manage("api_token", "kim").split()[-1]
    sid = str(uuid.uuid4())
    db = data / "db.sqlite3"

    server = app.serve()
    try:
        assert _post_chat(app, token, sid, "my name is Kim")["answer"] == "Nice to meet you, Kim."

        def hang_on() -> None:
            with contextlib.suppress(OSError):  # the server is killed under this call
                _post_chat(app, token, sid, "slow 30")

        caller = threading.Thread(target=hang_on, daemon=True)
        caller.start()
        deadline = time.monotonic() + 30
        while not ((found := _turn(db, "slow 30")) and found[0] == "running" and found[1]):
            assert time.monotonic() < deadline, (data / "server.log").read_text()
            time.sleep(0.1)
        cli_pid = found[1]
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
    # The sandbox dies with its parent: no CLI process is left to write into the transcript.
    assert_all_gone([cli_pid], within=5)

    server = app.serve()
    try:
        assert _turn(db, "slow 30")[0] == "interrupted"
        answer = _post_chat(app, token, sid, "what is my name")
        assert answer["answer"] == "Your name is Kim."
    finally:
        server.terminate()
        server.wait(10)
    with sqlite3.connect(db) as connection:
        (transcript,) = connection.execute(
            "SELECT transcript_path FROM chat_session WHERE id = ?", (sid.replace("-", ""),)
        ).fetchone()
    assert conversation_forks(Path(transcript)) == []
