"""Fixtures of the chat app's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server_files import ServerFiles, make_server_files


@pytest.fixture
def server_files(claude_env, settings) -> ServerFiles:
    """The server's secret key and database in its data folder, and chats whose agents run in
    bypass mode (any command, nobody asked), as an attacker's would."""
    settings.CLAUDE_PERMISSION_MODE = "bypassPermissions"
    return make_server_files(Path(settings.DATA_DIR))
