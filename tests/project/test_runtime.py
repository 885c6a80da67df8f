"""A server that starts runs the tasks the last one left queued, before anyone opens a page."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveApp, _free_port
from tests.task_helpers import git

pytestmark = [pytest.mark.real_cli]


def last_commit(repo: Path, branch: str) -> str:
    """The subject of the branch's newest commit; empty while the branch does not exist yet."""
    done = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%s", branch, "--"], capture_output=True, text=True)
    return done.stdout.strip()


def test_queued_tasks_start_when_the_server_starts_without_a_request(live_app, tmp_path):
    data = tmp_path / "app"
    workdir = data / "work"
    workdir.mkdir(parents=True)
    port = _free_port()
    env = {**live_app.env, "APP_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
           "CLAUDE_WORKDIR": str(workdir), "CLAUDE_ARCHIVE_DIR": str(data / "archive")}
    app = LiveApp(base_url=f"http://127.0.0.1:{port}", env=env, data_dir=data)
    app.manage("migrate", "--run-syncdb", "--noinput", "-v", "0")
    # Starting nothing here leaves the task queued, as a server that stopped before starting it does.
    task_id, user_id = map(int, app.manage("shell", "-v", "0", "-c", (
        "import asyncio, runtime; from django.contrib.auth import get_user_model; from project import runtime as composition; "
        "from tasks import services; runtime.TaskScheduler.kick = lambda self: None; runtime.install(composition.build()); "
        "user = get_user_model().objects.create_user('rex'); "
        "task = asyncio.run(services.create_task(user=user, prompt='write after.txt: started by itself', title='Left queued')); "
        "print(task.pk, user.pk)")).split())
    work = workdir / str(user_id)  # rex's own folder, their tasks' default repository

    log_path = data / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            # The run ends with a commit titled like the task on its branch.
            while last_commit(work, f"auto-claude/{task_id}") != "Left queued":
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the queued task did not run:\n" + log_path.read_text()
                time.sleep(0.3)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    assert git(work, "show", f"auto-claude/{task_id}:after.txt") == "started by itself\n"
    assert "GET " not in log_path.read_text()
