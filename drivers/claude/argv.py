"""The argv of one Claude Code turn. No Django imports; nothing a person typed ever goes here."""

from __future__ import annotations

from collections.abc import Sequence

from .paths import is_uuid


def build_argv(
    cli: str,
    *,
    session_id: str,
    resume: bool,
    permission_mode: str | None = None,
    skip_permissions: bool = False,
    allowed_tools: Sequence[str] = (),
    settings_json: str | None = None,
    partial_messages: bool = True,
) -> list[str]:
    """The argv of one ``--print`` turn; the message itself goes to stdin, never argv."""
    if not is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    argv = [cli, "--print", "--output-format", "stream-json", "--verbose"]
    if partial_messages:
        argv.append("--include-partial-messages")
    # The "=" form keeps a value from ever being read as a flag.
    argv.append(f"--resume={session_id}" if resume else f"--session-id={session_id}")
    if skip_permissions:
        argv.append("--dangerously-skip-permissions")
    elif permission_mode:
        argv.append(f"--permission-mode={permission_mode}")
    if allowed_tools:
        argv.append("--allowedTools=" + ",".join(allowed_tools))
    if settings_json:
        argv.append(f"--settings={settings_json}")
    return argv
