"""What the CLI asks its caller while a turn runs: the permission prompt (``can_use_tool``) and the
hooks (before and after a file tool, a memory file read), as the Agent SDK's callbacks.

Kept apart from :mod:`drivers.claude.live`, which owns the process and its turns: these only turn
the SDK's callback shapes into calls of the running turn's :class:`~drivers.claude.spec.TurnHandler`
and back, and hold no process state of their own. The session tells them who handles the turn that
runs now and where a notice goes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from claude_agent_sdk import ClaudeAgentOptions, HookMatcher
from claude_agent_sdk import types as sdk

from .events import Notice
from .spec import TurnHandler

# A task's allowed tools run without asking, by design: the SDK's warning that they bypass the
# permission callback says what is meant.
warnings.filterwarnings("ignore", category=sdk.CanUseToolShadowedWarning)

FILE_TOOLS = "Write|Edit|MultiEdit|NotebookEdit"
INSTRUCTIONS_LOADED = "InstructionsLoaded"
# What of the InstructionsLoaded hook's input goes on as a Notice's data.
_LOADED_FIELDS = ("file_path", "memory_type", "load_reason", "parent_file_path", "trigger_file_path")


@dataclass(frozen=True)
class Callbacks:
    """One session's callbacks. ``handler``: the running turn's handler (None between turns: then a
    permission prompt is denied and the file hooks let the call be); ``notice``: where a notice the
    CLI gave through a hook goes."""

    handler: Callable[[], TurnHandler | None]
    notice: Callable[[Notice], None]

    def options(self, *, env: dict[str, str], ask: bool) -> ClaudeAgentOptions:
        """What the SDK's client itself reads of its options with a transport of ours: the callbacks
        (permission prompts, unless ``ask`` is False, hooks) and what its initialize request sends.
        The CLI's flags are the transport's (:func:`drivers.claude.transport.cli_argv`)."""
        return ClaudeAgentOptions(
            env=env,
            system_prompt={"type": "preset", "preset": "claude_code"},
            can_use_tool=self.can_use_tool if ask else None,
            hooks=cast(
                dict[sdk.HookEvent, list[HookMatcher]],
                {
                    "PreToolUse": [HookMatcher(matcher=FILE_TOOLS, hooks=[self.before_file_tool])],
                    "PostToolUse": [HookMatcher(matcher=FILE_TOOLS, hooks=[self.after_file_tool])],
                    "PostToolUseFailure": [HookMatcher(matcher=FILE_TOOLS, hooks=[self.after_file_tool])],
                    # The CLI (2.1.330) names each memory file it reads; the SDK (0.2.187) passes the
                    # hook on but does not list the event in its types yet.
                    INSTRUCTIONS_LOADED: [HookMatcher(hooks=[self.instructions_loaded])],
                },
            ),
        )

    async def can_use_tool(
        self, tool: str, tool_input: dict[str, Any], context: sdk.ToolPermissionContext
    ) -> sdk.PermissionResultAllow | sdk.PermissionResultDeny:
        handler = self.handler()
        if handler is None:
            return sdk.PermissionResultDeny(message="No turn is running to ask about this tool call.")
        suggestions = [_as_dict(s) for s in (context.suggestions or [])]
        answer = await handler.permission(tool, tool_input, suggestions, context.tool_use_id)
        if not answer.allow:
            return sdk.PermissionResultDeny(message=answer.message or "The person denied this tool call.")
        return sdk.PermissionResultAllow()

    async def before_file_tool(
        self, hook_input: sdk.HookInput, tool_use_id: str | None, context: sdk.HookContext
    ) -> sdk.HookJSONOutput:
        handler = self.handler()
        if handler is None:
            return {}
        fields = cast(dict[str, Any], hook_input)
        reason = await handler.before_file_tool(
            str(fields.get("tool_name", "")), dict(fields.get("tool_input") or {}), tool_use_id
        )
        if reason is None:
            return {}
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }

    async def after_file_tool(
        self, hook_input: sdk.HookInput, tool_use_id: str | None, context: sdk.HookContext
    ) -> sdk.HookJSONOutput:
        handler = self.handler()
        if handler is not None:
            fields = cast(dict[str, Any], hook_input)
            await handler.after_file_tool(
                str(fields.get("tool_name", "")), dict(fields.get("tool_input") or {}), tool_use_id
            )
        return {}

    async def instructions_loaded(
        self, hook_input: sdk.HookInput, tool_use_id: str | None, context: sdk.HookContext
    ) -> sdk.HookJSONOutput:
        """A memory file (CLAUDE.md, one it imports) the CLI read: passed on as a Notice,
        ``instructions_loaded``."""
        fields = cast(dict[str, Any], hook_input)
        data = {name: str(fields[name]) for name in _LOADED_FIELDS if fields.get(name)}
        self.notice(Notice(subtype="instructions_loaded", data=data))
        return {}


def _as_dict(value: Any) -> dict[str, Any]:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        return result if isinstance(result, dict) else {}
    return dict(value.__dict__) if hasattr(value, "__dict__") else {}
