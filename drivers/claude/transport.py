"""The SDK's subprocess transport as the live session needs it, and what it reads of the SDK's process.

No Django imports. The CLI gets only the caller's environment (and the SDK's own variables),
inside the sandbox if there is one, leading a process group of its own. The functions below read
the SDK's process (pid, exit code, stderr reader): private attributes of the pinned SDK, kept in
this one module so that an SDK upgrade has one place to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from typing import Any

from claude_agent_sdk import ClaudeSDKClient
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from .sandbox import Sandbox, sandbox_args

# How long the tail of stderr may take to arrive once the process has exited.
STDERR_DRAIN_SECONDS = 0.5
# What the SDK sets in the CLI's environment itself: its entry point and version, the session-state
# frames it reads, PWD. Kept even where the server has a value of its own (the SDK's wins).
SDK_ENV = ("PWD", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_AGENT_SDK_VERSION", "CLAUDE_CODE_SDK_READS_SESSION_STATE")


class Transport(SubprocessCLITransport):
    """The SDK's subprocess transport, starting the CLI with only the caller's environment (and the
    SDK's own variables), inside the sandbox if there is one.

    The SDK starts the CLI with the server's whole environment plus its own variables and ours:
    every name of the server's the caller did not ask for is unset on the way, by bubblewrap or
    by env(1). setsid(1) first makes the process lead a group of its own, so that what it leaves
    behind when it exits can still be found and ended. Both exec: the pid stays the CLI's.
    """

    def __init__(self, *, sandbox: Sandbox | None, cwd: str, keep_env: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox = sandbox
        self._sandbox_cwd = cwd
        self._keep_env = frozenset(keep_env)

    def _build_command(self) -> list[str]:
        command = super()._build_command()
        if "--model" in command:
            # The SDK passes the model as two words: as one, no value can ever be read as a flag.
            at = command.index("--model")
            command[at : at + 2] = [f"--model={command[at + 1]}"]
        unset = sorted(name for name in os.environ if name not in self._keep_env)
        if self._sandbox is not None:
            command = [*sandbox_args(self._sandbox, cwd=self._sandbox_cwd, unset=unset), "--", *command]
        else:
            if "=" in command[0]:
                # env(1) would read such a path as one more variable to set.
                command = ["/bin/sh", "-c", 'exec "$0" "$@"', *command]
            command = [shutil.which("env") or "/usr/bin/env", *(f"--unset={name}" for name in unset), "--", *command]
        setsid = shutil.which("setsid")
        return [setsid, "--wait", *command] if setsid else command


def asyncio_transport_of(client: ClaudeSDKClient) -> asyncio.SubprocessTransport | None:
    """The asyncio transport under the SDK's (anyio) process, if there is one."""
    process = getattr(getattr(client, "_transport", None), "_process", None)
    inner = getattr(process, "_process", None)
    transport = getattr(inner, "_transport", None)
    return transport if isinstance(transport, asyncio.SubprocessTransport) else None


def pid_of(client: ClaudeSDKClient) -> int | None:
    process = getattr(getattr(client, "_transport", None), "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def returncode_of(client: ClaudeSDKClient) -> int | None:
    """The exit code of the client's process; None while it runs (or if it is not known)."""
    process = getattr(getattr(client, "_transport", None), "_process", None)
    code = getattr(process, "returncode", None)
    return code if isinstance(code, int) else None


async def stderr_drained(client: ClaudeSDKClient) -> None:
    """Give the SDK's stderr reader a moment to pass on the last lines of an exited process."""
    reader = getattr(getattr(client, "_transport", None), "_stderr_task", None)
    if reader is None or reader.done():
        return
    drained = asyncio.Event()
    reader.add_done_callback(lambda _reader: drained.set())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drained.wait(), STDERR_DRAIN_SECONDS)


async def no_prompt() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # an async generator that yields nothing: turns are sent with query()
