"""The SDK's subprocess transport as the live session needs it, and what it reads of the SDK's process.

No Django imports. The CLI gets only the caller's environment (and the SDK's own variables),
inside the sandbox if there is one, leading a process group of its own. The functions below read
the SDK's process (pid, exit code, stderr reader) and what its ``connect()`` adds to the CLI's
environment: private parts of the pinned SDK, kept in this one module so that an SDK upgrade has
one place to check.
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
from claude_agent_sdk._version import __version__ as SDK_VERSION

from .sandbox import Launch, Sandbox, launch

# How long the tail of stderr may take to arrive once the process has exited.
STDERR_DRAIN_SECONDS = 0.5
# What the SDK sets in the CLI's environment itself: its entry point and version, the session-state
# frames it reads, PWD. Kept even where the server has a value of its own (the SDK's wins).
SDK_ENV = ("PWD", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_AGENT_SDK_VERSION", "CLAUDE_CODE_SDK_READS_SESSION_STATE")


class Transport(SubprocessCLITransport):
    """The SDK's subprocess transport, starting the CLI with only the caller's environment (and the
    SDK's own variables), inside the sandbox if there is one.

    The SDK starts the CLI with the server's whole environment plus its own variables and ours.
    In the sandbox, bwrap starts with an empty environment and gives the CLI exactly the caller's
    and the SDK's variables, and its options come from a private file (:func:`sandbox.launch`):
    bwrap's own command line and environment, which the agent can read at ``/proc/1``, name none
    of the server's variables or paths. Without the sandbox every name of the server's the caller
    did not ask for is unset by env(1). setsid(1) first makes the process lead a group of its own,
    so that what it leaves behind when it exits can still be found and ended. All of them exec: the
    pid stays the CLI's.
    """

    def __init__(self, *, sandbox: Sandbox | None, cwd: str, keep_env: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox = sandbox
        self._sandbox_cwd = cwd
        self._keep_env = frozenset(keep_env)
        self._launch: Launch | None = None

    def _build_command(self) -> list[str]:
        command = super()._build_command()
        if "--model" in command:
            # The SDK passes the model as two words: as one, no value can ever be read as a flag.
            at = command.index("--model")
            command[at : at + 2] = [f"--model={command[at + 1]}"]
        if self._sandbox is not None:
            if self._launch is not None:
                self._launch.discard()
            self._launch = launch(self._sandbox, command, cwd=self._sandbox_cwd, env=self._sandboxed_env())
            command = self._launch.argv
        else:
            unset = sorted(name for name in os.environ if name not in self._keep_env)
            if "=" in command[0]:
                # env(1) would read such a path as one more variable to set.
                command = ["/bin/sh", "-c", 'exec "$0" "$@"', *command]
            command = [shutil.which("env") or "/usr/bin/env", *(f"--unset={name}" for name in unset), "--", *command]
        setsid = shutil.which("setsid")
        return [setsid, "--wait", *command] if setsid else command

    def _sandboxed_env(self) -> dict[str, str]:
        """The CLI's environment in the sandbox: the caller's, and what the SDK's ``connect()`` adds
        (claude-agent-sdk 0.2.187: its entry point and version, the session-state frames it reads,
        PWD), which bwrap sets itself since the SDK's own go to a process that drops them."""
        env = {"CLAUDE_CODE_ENTRYPOINT": "sdk-py", **self._options.env, "CLAUDE_AGENT_SDK_VERSION": SDK_VERSION}
        env.setdefault("CLAUDE_CODE_SDK_READS_SESSION_STATE", "1")
        if self._cwd:
            env["PWD"] = str(self._cwd)
        return {name: value for name, value in env.items() if name in self._keep_env}

    async def connect(self) -> None:
        try:
            await super().connect()
        except BaseException:
            # It never started: nothing opened (and removed) its options file.
            if self._launch is not None:
                self._launch.discard()
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._launch is not None:
                self._launch.discard()


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
