"""What the CLI asks while a turn runs: permission prompts, and the hooks around file edits.

A tool call the permission mode does not allow by itself is asked of a person
(:mod:`chat.services.permissions`), or refused where nobody can answer (the API). A file edit first
passes the turn's file guard (a task's: another task may hold the file), then waits for a file slot
(``CLAUDE_MAX_FILE_OPERATIONS``, the node's :class:`runtime.FileSlots`) and gives it back once the
tool has run. While a person thinks about a prompt, the call holds no slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from drivers.claude import Permission
from runtime import FileSlots

from ..models import Event, Session
from . import permissions
from .recording import Recorder

EXIT_PLAN_TOOL = "ExitPlanMode"
# What the agent reads when it presents its plan: the page shows it, the person decides.
PLAN_SHOWN = (
    "Your plan is shown to the person with a button to run it. Stop here and wait: they run it, or answer "
    "with what to change."
)
# What a plan mode chat's file edits are told: nothing changes before the plan runs.
NO_EDITS_IN_PLAN_MODE = (
    "This chat is in plan mode: nothing may be changed yet. Write your plan and present it with ExitPlanMode."
)
TURN_ENDED = "The turn was stopped before this call could run."
API_NO_PROMPTS = (
    "This turn came through the HTTP API, which cannot answer permission prompts, so the call was "
    "refused. Ask in the browser, or let the project's permission mode allow it."
)


@dataclass(frozen=True)
class FileRefusal:
    """A ``file_guard``'s refusal of an edit: ``reason`` goes to the agent (the CLI hands it over as
    "PreToolUse:<tool> hook error: <reason>"); the log shows ``shown`` in place of that tool result."""

    reason: str
    shown: str


FILE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")

FileGuard = Callable[[str, dict[str, Any]], Awaitable[FileRefusal | None]]


class TurnHandler:
    """The handler of one turn (a :class:`drivers.claude.TurnHandler`)."""

    def __init__(
        self,
        *,
        recorder: Recorder,
        file_slots: FileSlots,
        interactive: bool = True,
        file_guard: FileGuard | None = None,
        on_prompt: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.recorder = recorder
        self.slots = file_slots
        self.interactive = interactive
        self.file_guard = file_guard
        # Called when a permission prompt opens and again when it is answered.
        self.on_prompt = on_prompt
        self.file_slots: set[str] = set()
        # Hook callbacks waiting for a file slot: ended with the turn, so that a slot granted after
        # a Stop is never held by a turn that is over (which would block every later edit).
        self._slot_waits: set[asyncio.Task[Any]] = set()
        self._ended = False
        # Edits the file guard refused, by tool call id: what the log shows for their tool result.
        self.refused: dict[str, str] = {}
        # Calls a person's answer (or its timeout) denied: their prompt says so, their result need not.
        self.denied: set[str] = set()

    @property
    def _owner(self) -> int | None:
        return self.recorder.turn.session.owner_id

    async def permission(
        self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]], tool_use_id: str | None
    ) -> Permission:
        session = await Session.objects.aget(pk=self.recorder.session_id)
        key = tool_use_id or ""
        if tool == EXIT_PLAN_TOOL:
            # Not a prompt: its card shows the plan with "Run this plan" (chat.services.plans).
            self.denied.add(key)
            self._release(key)
            return Permission(allow=False, message=PLAN_SHOWN)
        if session.plan_mode and tool in FILE_TOOLS:
            self.denied.add(key)
            self._release(key)
            return Permission(allow=False, message=NO_EDITS_IN_PLAN_MODE)
        if tool in session.always_allowed:
            return Permission(allow=True)
        if not self.interactive:
            answer = Permission(allow=False, message=API_NO_PROMPTS)
        else:
            # The file slot its PreToolUse hook took is not held while a person thinks: the call
            # is not running, and other chats' edits should not wait for this answer.
            holding = key in self.file_slots
            self._release(key)
            answer = await self._ask(tool, tool_input, suggestions, key)
            if not answer.allow:
                self.denied.add(key)
            if holding and answer.allow and not await self._take_file_slot(key):
                return Permission(allow=False, message=TURN_ENDED)
        if not answer.allow:
            self._release(key)  # it will not run: no hook after it gives the slot back
        return answer

    async def _ask(
        self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]], tool_use_id: str
    ) -> Permission:
        on_prompt = self.on_prompt
        opened = permissions.ask(
            recorder=self.recorder,
            tool=tool,
            tool_input=tool_input,
            suggestions=suggestions,
            tool_use_id=tool_use_id,
            on_open=on_prompt,
        )
        try:
            return await opened
        finally:
            if on_prompt is not None:
                await asyncio.shield(on_prompt())

    async def before_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> str | None:
        if self.file_guard is not None and (refusal := await self.file_guard(tool, tool_input)):
            self.refused[tool_use_id or ""] = refusal.shown
            return refusal.reason
        if not await self._take_file_slot(tool_use_id or ""):
            return TURN_ENDED
        return None

    async def _take_file_slot(self, key: str) -> bool:
        """Wait for a file slot; False (and no slot held) if the turn ended meanwhile."""
        waiter = asyncio.current_task()
        if self._ended or waiter is None:
            return False
        self._slot_waits.add(waiter)
        try:
            await self.slots.acquire(owner=self._owner, on_wait=self._waiting_for_file_slot)
        except asyncio.CancelledError:
            if self._ended:
                return False  # cancelled by release_all: the turn is over, the CLI is told no
            raise
        finally:
            self._slot_waits.discard(waiter)
        if self._ended:
            self.slots.release(owner=self._owner)
            return False
        self.file_slots.add(key)
        await self.recorder.resume()
        return True

    async def after_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> None:
        self._release(tool_use_id or "")

    async def _waiting_for_file_slot(self) -> None:
        await self.recorder.add(
            kind=Event.Kind.NOTICE,
            name="file_slot",
            text=(
                f"Waiting for a file slot: {settings.CLAUDE_MAX_FILE_OPERATIONS} file edits are running in other chats "
                "and tasks (CLAUDE_MAX_FILE_OPERATIONS)."
            ),
        )

    def _release(self, tool_use_id: str) -> None:
        if tool_use_id in self.file_slots:
            self.file_slots.discard(tool_use_id)
            self.slots.release(owner=self._owner)

    def release_all(self) -> None:
        """The turn is over: give back its file slots and stop waiting for more."""
        self._ended = True
        for waiter in list(self._slot_waits):
            waiter.cancel()
        for tool_use_id in list(self.file_slots):
            self._release(tool_use_id)
