"""The Agent SDK's messages as the driver's typed events (:mod:`drivers.claude.events`). No Django."""

from __future__ import annotations

from typing import Any

from claude_agent_sdk import types as sdk

from .events import (
    Entry,
    Event,
    Init,
    McpStatus,
    Notice,
    Result,
    StreamUsage,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
    Unknown,
    as_dict,
    as_int,
    content_text,
    usage_in,
)


def convert(message: Any) -> list[Event]:
    """The events one SDK message stands for (an assistant message may hold several)."""
    match message:
        case sdk.StreamEvent(parent_tool_use_id=str()):
            # A subagent's own request: its text comes whole with its messages, and its tokens are
            # not the session's context.
            return []
        case sdk.StreamEvent(event=event):
            if isinstance(event, dict) and event.get("type") in ("message_start", "message_delta"):
                started = event["type"] == "message_start"
                usage = as_dict(as_dict(event.get("message")).get("usage")) if started else as_dict(event.get("usage"))
                input_tokens, output_tokens = usage_in(usage)
                return [StreamUsage(input_tokens=input_tokens, output_tokens=output_tokens, started=started)]
            delta = event.get("delta") if isinstance(event, dict) else None
            if (
                isinstance(delta, dict)
                and event.get("type") == "content_block_delta"
                and delta.get("type") == "text_delta"
            ):
                return [TextDelta(text=str(delta.get("text", "")))]
            return []
        case sdk.AssistantMessage(content=content, uuid=uuid, parent_tool_use_id=parent):
            return [*(event for block in content for event in _assistant_block(block, parent)), *_entry(uuid)]
        case sdk.UserMessage(content=content, uuid=uuid, parent_tool_use_id=parent):
            if isinstance(content, str):
                return []
            results: list[Event] = [
                ToolResult(
                    tool_use_id=block.tool_use_id,
                    content=content_text(block.content),
                    is_error=bool(block.is_error),
                    parent=parent or None,
                )
                for block in content
                if isinstance(block, sdk.ToolResultBlock)
            ]
            return [*results, *_entry(uuid)]
        case sdk.ResultMessage() as result:
            input_tokens, output_tokens = usage_in(result.usage or {})
            return [
                Result(
                    is_error=result.is_error,
                    subtype=result.subtype,
                    text=result.result or "",
                    session_id=result.session_id,
                    duration_ms=result.duration_ms,
                    total_cost_usd=float(result.total_cost_usd or 0.0),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    errors=tuple(str(e) for e in result.errors or ()),
                    context_window=max(
                        (as_int(as_dict(usage).get("contextWindow")) for usage in as_dict(result.model_usage).values()),
                        default=0,
                    ),
                )
            ]
        case sdk.SystemMessage(subtype=subtype, data=data):
            if subtype == "init":
                return [
                    Init(
                        session_id=str(data.get("session_id", "")),
                        cwd=str(data.get("cwd", "")),
                        model=str(data.get("model", "")),
                        tools=tuple(str(tool) for tool in data.get("tools") or () if isinstance(tool, str)),
                        mcp_servers=tuple(
                            McpStatus(name=str(server.get("name", "")), status=str(server.get("status", "")))
                            for server in data.get("mcp_servers") or ()
                            if isinstance(server, dict)
                        ),
                    )
                ]
            return [Notice(subtype=subtype, data=dict(data))]
    return [Unknown(type=type(message).__name__, data={})]


def _entry(uuid: Any) -> list[Event]:
    return [Entry(uuid=uuid)] if isinstance(uuid, str) and uuid else []


def _assistant_block(block: Any, parent: str | None) -> list[Event]:
    match block:
        case sdk.TextBlock(text=text):
            return [Text(text=text, parent=parent or None)]
        case sdk.ToolUseBlock(id=tool_id, name=name, input=tool_input):
            return [
                ToolUse(
                    id=tool_id,
                    name=name,
                    input=tool_input if isinstance(tool_input, dict) else {"value": tool_input},
                    parent=parent or None,
                )
            ]
    return []
