"""What a chat's agent runs with: its folders, its environment and its sandbox.

Every CLI process gets an environment made here (the server's own variables stay out, except
the CLI's credentials and settings listed in CLAUDE_ENV_PASSTHROUGH) and, unless CLAUDE_SANDBOX
is "off", runs inside bubblewrap seeing only its working directory, its own config folder (which
holds its transcript) and the CLI.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.conf import settings

from drivers import claude

from ..models import Session

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxUnavailable(Exception):
    """The sandbox is on but bubblewrap is missing; the text says how to install it."""


def config_folder(*, owner_id: int, session_id: str) -> Path:
    """A chat's own CLI config folder, named from ids only: ``CLAUDE_CONFIG_DIR/<user id>/<chat uuid>``."""
    if not claude.is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    return Path(settings.CLAUDE_CONFIG_DIR) / str(int(owner_id)) / session_id.lower()


def sandboxed() -> bool:
    return settings.CLAUDE_SANDBOX != "off"


def cli_program() -> str:
    """The CLI's executable with symlinks resolved (a link outside the sandbox would lead nowhere inside)."""
    return os.path.realpath(settings.CLAUDE_CLI) if os.path.exists(settings.CLAUDE_CLI) else settings.CLAUDE_CLI


def _cli_folder(program: str) -> Path:
    """The folder the CLI needs: its npm package (the one with package.json), else its own folder."""
    path = Path(program).parent
    for folder in [path, *path.parents][:3]:
        if (folder / "package.json").is_file():
            return folder
    return path


def _passes(name: str) -> bool:
    patterns = list(settings.CLAUDE_ENV_PASSTHROUGH) + ([] if sandboxed() else ["IS_SANDBOX"])
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def api_url() -> str:
    """Where the agents' CLI sends its Messages API requests (it gets ANTHROPIC_BASE_URL from here)."""
    return os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"


def environment(*, session: Session, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The CLI's whole environment for a turn of ``session``."""
    env = {name: value for name, value in os.environ.items() if _passes(name)}
    env.update(
        {
            "PATH": SANDBOX_PATH if sandboxed() else os.environ.get("PATH", SANDBOX_PATH),
            "HOME": session.config_dir,
            "CLAUDE_CONFIG_DIR": session.config_dir,
            **extra,
        }
    )
    return env


def sandbox(*, session: Session, readonly: Sequence[Path] = (), writable: Sequence[Path] = ()) -> claude.Sandbox | None:
    """The sandbox of a turn of ``session`` (None when CLAUDE_SANDBOX is off)."""
    if not sandboxed():
        return None
    try:
        bwrap = claude.find_bwrap(settings.CLAUDE_BWRAP)
    except claude.SandboxMissing:
        raise SandboxUnavailable(
            "The server cannot confine Claude Code: bubblewrap is not installed. An admin installs it with "
            "`apt-get install bubblewrap` (the README's set-up command does this) and restarts the server; "
            "or sets CLAUDE_SANDBOX=off, which lets every agent see everything the server can."
        ) from None
    Path(session.config_dir).mkdir(parents=True, exist_ok=True)
    return claude.Sandbox(
        bwrap=bwrap,
        writable=[Path(session.workdir), Path(session.config_dir), *writable],
        readonly=[_cli_folder(cli_program()), *readonly],
        state_dir=Path(settings.DATA_DIR) / "sandbox",
        home=Path(session.config_dir),
    )
