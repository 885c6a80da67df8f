"""What a live session is started with, what a turn's handler answers, and how starting fails.

No Django imports; re-exported by :mod:`drivers.claude`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .events import Exit
from .sandbox import Sandbox

# One tool result can be several MB (a file read, an image): the SDK's 1 MiB default would end the session.
MAX_LINE_BYTES = 32 * 1024 * 1024
CLOSE_GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class Permission:
    """The answer to a permission prompt."""

    allow: bool
    message: str = ""  # read by the agent when the call is denied
    always: bool = False  # the person allowed this tool for the rest of the session


class TurnHandler(Protocol):
    """What a turn does when the CLI asks: permission prompts and hooks around file tools."""

    async def permission(
        self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]], tool_use_id: str | None
    ) -> Permission:
        """Answer a prompt (a tool call the permission mode does not allow by itself)."""

    async def before_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> str | None:
        """Before Write/Edit/MultiEdit/NotebookEdit: None lets it run, a text refuses it (the agent reads it)."""

    async def after_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> None:
        """After such a tool ran (or failed)."""


@dataclass(frozen=True)
class LiveSpec:
    """How to start a session's CLI process. ``env`` is all the CLI gets of the server's environment."""

    cli: str
    cwd: str
    session_id: str
    resume: bool
    env: Mapping[str, str]
    sandbox: Sandbox | None = None
    permission_mode: str | None = None
    skip_permissions: bool = False
    allowed_tools: tuple[str, ...] = ()
    model: str | None = None
    # Resume the conversation at this transcript entry (a rewind): later entries are left behind.
    # Read only when the process starts, so a warm process started without it never serves it.
    resume_at: str | None = None
    # The CLI keeps a copy of each file before its tools change it (the SDK's file checkpointing), so
    # that a rewind can put the files back.
    file_checkpoints: bool = False
    # Put the files back as they were when this user message was sent (a rewind that asked for it),
    # once the process has started, before its first turn.
    rewind_files_to: str | None = None
    # The MCP servers the CLI starts, as ``--mcp-config`` JSON (``{"mcpServers": {...}}``; "": none).
    # Only these: the CLI runs with ``--strict-mcp-config``.
    mcp_config: str = ""
    max_line_bytes: int = MAX_LINE_BYTES
    # How long the CLI may take to exit once its stdin is closed (then SIGTERM; as long again, then
    # SIGKILL), and to acknowledge an interrupt.
    close_grace: float = CLOSE_GRACE_SECONDS

    @property
    def mode(self) -> str:
        """The permission mode the CLI runs in (``default`` when none is named)."""
        return "bypassPermissions" if self.skip_permissions else self.permission_mode or "default"

    def fingerprint(self) -> tuple[object, ...]:
        """What must be equal for a warm process to serve a turn (else it is restarted). The model
        and the permission mode are not: a warm process changes them through the control protocol
        (``set_model``, ``set_permission_mode``). Skipping permissions is: a process started
        asking may not be turned into one that asks nothing."""
        return (
            self.cli,
            self.cwd,
            self.session_id,
            self.skip_permissions,
            self.allowed_tools,
            self.file_checkpoints,
            # A rewind's start: the warm process holds the whole conversation (and the turn after
            # it starts one more process, which resumes where the transcript now ends).
            self.resume_at,
            self.rewind_files_to,
            # A server turned on or off for the chat: its process starts again with the new set (a
            # turned-off server must not run at all, which toggling it on a live process would not give).
            self.mcp_config,
            tuple(sorted(self.env.items())),
            self.sandbox,
        )


class CliNotFound(Exception):
    """The ``claude`` executable is not where the settings say."""


class WorkdirMissing(Exception):
    """The working directory of the session does not exist."""


class SessionFailed(Exception):
    """The CLI process could not start or ended; ``exit`` says how (its stderr included)."""

    def __init__(self, exit: Exit) -> None:
        super().__init__(exit.stderr)
        self.exit = exit


# A user message: its text, or Messages-API content blocks (``text``, ``image`` with a base64 source).
Prompt = str | list[dict[str, Any]]
