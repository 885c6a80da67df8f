"""The fixture that starts live sessions on fake CLIs (tests/drivers/claude/fakes.py)."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.claude import LiveSession, LiveSpec
from tests.drivers.claude.fakes import ANSWER, BASE_ENV, SID, Start, child_pids, fake_cli
from tests.drivers.claude.sessions import Sessions
from tests.processes import running

SPEC_OPTIONS = {spec_field.name for spec_field in dataclasses.fields(LiveSpec)} - {"cli", "cwd", "session_id", "env"}


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start a session on a fake written from ``on_turn`` (and fake_cli's other options); every
    session is closed at the end, and the sleeps the fakes started are ended if the driver failed to."""
    sessions = Sessions()

    async def started(on_turn: str = ANSWER, *, env: dict[str, str] | None = None, **options: Any) -> LiveSession:
        # LiveSpec's own options go to the spec, the others to fake_cli.
        spec_options = {
            "resume": False,
            "close_grace": 0.5,
            **{key: options.pop(key) for key in list(options) if key in SPEC_OPTIONS},
        }
        cli = fake_cli(tmp_path, on_turn, **options)
        return await sessions.start(
            LiveSpec(cli=cli, cwd=str(tmp_path), session_id=SID, env={**BASE_ENV, **(env or {})}, **spec_options),
            within=15,
        )

    yield started
    await sessions.close_all()
    for pid in child_pids(tmp_path):
        if running(pid):
            os.kill(pid, signal.SIGKILL)
