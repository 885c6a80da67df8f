"""Fixtures shared by the whole suite: the offline stand-in and the real Claude Code CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from chat.stub_api import StubServer

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = ROOT / "node_modules" / ".bin" / "claude"


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

    def transcript(self, session_id: object, cwd: Path | None = None) -> Path:
        from chat.cli import transcript_path

        return transcript_path(self.config_dir, cwd or self.workdir, str(session_id))


def claude_process_env(stub_url: str, config_dir: Path) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": stub_url,
        "ANTHROPIC_API_KEY": "test-key",
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


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
    return ClaudeEnv(cli=CLAUDE, config_dir=config_dir, workdir=workdir, archive_dir=archive_dir,
                     api_url=stub_api.url, env=env)
