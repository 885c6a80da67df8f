"""Typed events of the CLI's ``--output-format stream-json``, and their parsing.

No Django imports; :mod:`drivers.claude` re-exports every name here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# ---------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Init:
    session_id: str
    cwd: str
    model: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of assistant text as it streams (from ``--include-partial-messages``)."""

    text: str


@dataclass(frozen=True)
class Text:
    """A complete assistant text block."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    content: str
    is_error: bool


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
    cost_usd: float
    input_tokens: int
    output_tokens: int
    errors: tuple[str, ...] = ()


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


Event = Init | TextDelta | Text | ToolUse | ToolResult | Notice | Result | Unknown | Garbage | Oversized | Exit


def _content_text(content: Any) -> str:
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


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _dict(value: Any) -> dict[str, Any]:
    # A field of the wrong shape must not end the turn with an exception: read it as empty.
    return value if isinstance(value, dict) else {}


def parse_event(obj: dict[str, Any]) -> list[Event]:
    """Typed events from one decoded stream-json object (an assistant message may hold several)."""
    kind = obj.get("type")
    if kind == "system":
        subtype = str(obj.get("subtype", ""))
        if subtype == "init":
            return [Init(session_id=str(obj.get("session_id", "")), cwd=str(obj.get("cwd", "")),
                         model=str(obj.get("model", "")))]
        return [Notice(subtype=subtype, data=obj)]
    if kind in ("assistant", "user"):
        content = _dict(obj.get("message")).get("content")
        if isinstance(content, str):
            return [Text(text=content)] if kind == "assistant" else []
        events: list[Event] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and kind == "assistant":
                events.append(Text(text=str(block.get("text", ""))))
            elif btype == "tool_use":
                tool_input = block.get("input")
                events.append(ToolUse(id=str(block.get("id", "")), name=str(block.get("name", "")),
                                      input=tool_input if isinstance(tool_input, dict) else {"value": tool_input}))
            elif btype == "tool_result":
                events.append(ToolResult(tool_use_id=str(block.get("tool_use_id", "")),
                                         content=_content_text(block.get("content")),
                                         is_error=bool(block.get("is_error"))))
        return events
    if kind == "stream_event":
        event = _dict(obj.get("event"))
        delta = _dict(event.get("delta"))
        if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
            return [TextDelta(text=str(delta.get("text", "")))]
        return []
    if kind == "result":
        usage = _dict(obj.get("usage"))
        errors = obj.get("errors") or []
        input_tokens = sum(_int(usage.get(k)) for k in
                           ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        return [Result(
            is_error=bool(obj.get("is_error")),
            subtype=str(obj.get("subtype", "")),
            text=str(obj.get("result", "") or ""),
            session_id=str(obj.get("session_id", "")),
            duration_ms=_int(obj.get("duration_ms")),
            cost_usd=_float(obj.get("total_cost_usd")),
            input_tokens=input_tokens,
            output_tokens=_int(usage.get("output_tokens")),
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (str(errors),),
        )]
    return [Unknown(type=str(kind), data=obj)]


def parse_line(line: bytes | str) -> list[Event]:
    """Typed events from one stdout line; blank lines give none, non-JSON gives Garbage."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return []
    try:
        obj = json.loads(text)
    except ValueError:
        return [Garbage(line=text[:2000])]
    if not isinstance(obj, dict):
        return [Garbage(line=text[:2000])]
    return parse_event(obj)
