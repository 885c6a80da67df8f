"""Fixtures for the tasks tests: a real git repository as the default project, the real CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from tests.factories import make_user


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    (path / "README.md").write_text("# demo\n")
    (path / "shared.txt").write_text("original\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(claude_env, settings, tmp_path, monkeypatch) -> Path:
    """CLAUDE_WORKDIR as a git repository on branch main; tasks may also run shell commands."""
    init_repo(claude_env.workdir)
    settings.CLAUDE_TASK_STATE_DIR = tmp_path / "task-state"
    settings.CLAUDE_PROJECTS = {"default": claude_env.workdir}
    settings.CLAUDE_TASK_ALLOWED_TOOLS = ["Read", "Write", "Edit", "Bash"]
    settings.CLAUDE_MAX_TOKENS_PER_MINUTE = 0
    # The test machine runs as root: the CLI refuses skip-permissions there without this.
    monkeypatch.setenv("IS_SANDBOX", "1")
    return claude_env.workdir


@pytest.fixture
async def scheduler(repo):
    from chat.tasks.scheduler import get_scheduler

    sched = get_scheduler()
    yield sched
    await sched.shutdown()


@pytest.fixture
async def user(db):
    return await sync_to_async(make_user)()
