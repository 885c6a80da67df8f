"""Helpers for tests of tasks: real git repositories, and waiting for what a task does."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import runtime
from chat.models import Event
from tasks.models import Task


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def init_repo(path: Path) -> Path:
    """A repository on branch main with one commit (README.md, shared.txt): tasks branch off it."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    (path / "README.md").write_text("# demo\n")
    (path / "shared.txt").write_text("original\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def bare_remote(path: Path, source: Path, *, name: str = "origin") -> Path:
    """A bare repository at ``path`` (a forge's copy) holding ``source``'s main, added to ``source`` as ``name``."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True, capture_output=True)
    git(source, "remote", "add", name, str(path))
    git(source, "push", "-q", name, "main")
    return path


async def settled(scheduler: runtime.TaskScheduler, task: Task) -> Task:
    """The task once nothing runs or can start any more."""
    await scheduler.idle()
    return await Task.objects.aget(pk=task.pk)


async def wait_for[T](predicate: Callable[[], Awaitable[T]], timeout: float = 30.0, step: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(step)


async def status_of(task: Task) -> str:
    return (await Task.objects.aget(pk=task.pk)).status


async def texts(task: Task) -> list[str]:
    task = await Task.objects.aget(pk=task.pk)
    return [e.text async for e in Event.objects.filter(turn__session_id=task.session_id, kind="text").order_by("id")]
