"""Typed events of the CLI's ``--output-format stream-json``, and their parsing.

No Django imports; :mod:`drivers.claude` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class McpStatus:
    """An MCP server as the CLI's init message reports it: ``connected``, ``failed``, ``pending``, ..."""

    name: str
    status: str


@dataclass(frozen=True)
class Init:
    session_id: str
    cwd: str
    model: str
    # The tools the model is offered (an MCP server's as ``mcp__<server>__<tool>``) and the MCP servers.
    tools: tuple[str, ...] = ()
    mcp_servers: tuple[McpStatus, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    """A piece of assistant text as it streams (from ``--include-partial-messages``)."""

    text: str


@dataclass(frozen=True)
class StreamUsage:
    """The tokens of one API request as it streams: ``started`` at its ``message_start`` (its input),
    then its output so far (``message_delta``). What an interrupted turn used: the CLI's result then
    reports no tokens at all."""

    input_tokens: int
    output_tokens: int
    started: bool


@dataclass(frozen=True)
class Text:
    """A complete assistant text block."""

    text: str
    # The Agent (Task) tool call whose subagent said it; None: the session's own agent.
    parent: str | None = None


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]
    parent: str | None = None  # the Agent (Task) tool call whose subagent made this call


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    content: str
    is_error: bool
    parent: str | None = None  # the Agent (Task) tool call whose subagent got this result


@dataclass(frozen=True)
class Entry:
    """A conversation entry the CLI wrote into its transcript (an assistant message, a tool
    result): its ``uuid`` is a point a later run may resume the conversation at."""

    uuid: str


@dataclass(frozen=True)
class Notice:
    """A ``system`` event other than init (permission_denied, api_retry, status, ...)."""

    subtype: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Result:
    is_error: bool
    subtype: str
    text: str
    session_id: str
    duration_ms: int
    # The session's running total as the CLI reports it (resumed runs included), not this turn's
    # own cost: a turn's cost is the difference from the previous turn's total.
    total_cost_usd: float
    input_tokens: int
    output_tokens: int
    errors: tuple[str, ...] = ()
    # The model's context window in tokens, as the CLI reports it (its modelUsage); 0: not said.
    context_window: int = 0
    # The uuid the turn's user message went to the CLI with (its transcript entry's): the point a
    # rewind puts the files back to. Set by the live session, not the CLI; not part of equality.
    sent: str = field(default="", compare=False)


@dataclass(frozen=True)
class Sent:
    """The turn's message is written to the CLI's stdin: what the app does for the turn meanwhile
    (saving that it runs) no longer holds the message up."""


@dataclass(frozen=True)
class Unknown:
    """A JSON event of a type this driver does not know; kept, never fatal."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Garbage:
    """A stdout line that is not JSON (the CLI prints some errors this way)."""

    line: str


@dataclass(frozen=True)
class Oversized:
    """A line longer than the limit, dropped unread."""

    size: int


@dataclass(frozen=True)
class Exit:
    """Always the last event of a turn: how the process ended."""

    returncode: int
    stderr: str


Event = (
    Sent
    | Init
    | TextDelta
    | StreamUsage
    | Text
    | ToolUse
    | ToolResult
    | Entry
    | Notice
    | Result
    | Unknown
    | Garbage
    | Oversized
    | Exit
)


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "image":
                    parts.append("[image]")
        return "\n".join(parts)
    return "" if content is None else str(content)


def as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def usage_in(usage: dict[str, Any]) -> tuple[int, int]:
    """A turn's input tokens (cache writes and reads included) and output tokens."""
    input_tokens = sum(
        as_int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return input_tokens, as_int(usage.get("output_tokens"))


def as_dict(value: Any) -> dict[str, Any]:
    # A field of the wrong shape must not end the turn with an exception: read it as empty.
    return value if isinstance(value, dict) else {}
