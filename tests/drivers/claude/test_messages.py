"""The Agent SDK's messages as the driver's typed events (drivers/claude/messages.py).

The messages are built with the SDK's own public types, as its parser makes them from the CLI's
lines; test_live.py sends the same through a fake CLI, test_stub_api.py through the real one.
"""

from __future__ import annotations

from typing import Any

import pytest
from claude_agent_sdk import types as sdk

from drivers.claude import Init, McpStatus, Notice, Result, StreamUsage, Text, TextDelta, ToolResult, ToolUse, Unknown
from drivers.claude.messages import convert

SID = "0b6f4b52-3c1e-4d7a-9f51-2a1d6c8e9b30"


def stream_event(event: dict[str, Any]) -> sdk.StreamEvent:
    return sdk.StreamEvent(uuid="u1", session_id=SID, event=event)


def result_message(**fields: Any) -> sdk.ResultMessage:
    base: dict[str, Any] = {
        "subtype": "success",
        "duration_ms": 719,
        "duration_api_ms": 700,
        "is_error": False,
        "num_turns": 1,
        "session_id": SID,
    }
    return sdk.ResultMessage(**{**base, **fields})


def test_a_text_delta_streams_as_text_delta() -> None:
    delta = stream_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})
    assert convert(delta) == [TextDelta(text="Hel")]


def test_a_requests_usage_streams_at_its_start_and_as_its_output_grows() -> None:
    start = {
        "type": "message_start",
        "message": {"id": "m", "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}},
    }
    assert convert(stream_event(start)) == [StreamUsage(input_tokens=100, output_tokens=1, started=True)]
    delta = {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 42}}
    assert convert(stream_event(delta)) == [StreamUsage(input_tokens=0, output_tokens=42, started=False)]
    # A field of the wrong shape is read as empty, never fatal.
    odd = {"type": "message_start", "message": ["not", "a", "dict"]}
    assert convert(stream_event(odd)) == [StreamUsage(input_tokens=0, output_tokens=0, started=True)]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_delta", "delta": ["not", "a", "dict"]},
        {"type": "message_stop"},
        {},
    ],
)
def test_other_stream_events_give_nothing(event: dict[str, Any]) -> None:
    assert convert(stream_event(event)) == []


def test_an_assistant_message_gives_each_text_and_tool_call_in_order() -> None:
    message = sdk.AssistantMessage(
        model="m",
        content=[
            sdk.TextBlock(text="Let me write it."),
            sdk.ThinkingBlock(thinking="private", signature="sig"),
            sdk.ToolUseBlock(id="toolu_1", name="Write", input={"file_path": "/w/a.txt", "content": "x"}),
            sdk.TextBlock(text="Done."),
        ],
    )
    assert convert(message) == [
        Text(text="Let me write it."),
        ToolUse(id="toolu_1", name="Write", input={"file_path": "/w/a.txt", "content": "x"}),
        Text(text="Done."),
    ]


def test_a_tool_input_that_is_not_an_object_is_wrapped() -> None:
    message = sdk.AssistantMessage(model="m", content=[sdk.ToolUseBlock(id="t", name="Odd", input="just text")])  # type: ignore[arg-type]
    assert convert(message) == [ToolUse(id="t", name="Odd", input={"value": "just text"})]


def test_tool_results_come_back_in_a_user_message() -> None:
    message = sdk.UserMessage(
        content=[
            sdk.ToolResultBlock(
                tool_use_id="toolu_1",
                is_error=True,
                content=[
                    {"type": "text", "text": "line 1"},
                    {"type": "image", "source": {}},
                    {"type": "text", "text": "line 2"},
                ],
            ),
            sdk.ToolResultBlock(tool_use_id="toolu_2", content="plain string"),
            sdk.ToolResultBlock(tool_use_id="toolu_3"),
            sdk.TextBlock(text="not a tool result"),
        ]
    )
    assert convert(message) == [
        ToolResult(tool_use_id="toolu_1", content="line 1\n[image]\nline 2", is_error=True),
        ToolResult(tool_use_id="toolu_2", content="plain string", is_error=False),
        ToolResult(tool_use_id="toolu_3", content="", is_error=False),
    ]


def test_the_users_own_message_echoed_back_is_not_assistant_text() -> None:
    assert convert(sdk.UserMessage(content="my own words")) == []


def test_a_result_gives_its_figures_with_cache_tokens_counted_as_input() -> None:
    message = result_message(
        result="All done.",
        total_cost_usd=0.0992,
        usage={
            "input_tokens": 3,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 24000,
            "output_tokens": 25,
        },
    )
    assert convert(message) == [
        Result(
            is_error=False,
            subtype="success",
            text="All done.",
            session_id=SID,
            duration_ms=719,
            total_cost_usd=0.0992,
            input_tokens=24103,
            output_tokens=25,
        )
    ]


def test_a_failed_result_keeps_its_errors() -> None:
    [result] = convert(result_message(subtype="error_during_execution", is_error=True, errors=["boom", "bang"]))
    assert isinstance(result, Result) and result.is_error and result.errors == ("boom", "bang")
    assert result.text == "" and result.total_cost_usd == 0.0


def test_a_result_with_odd_usage_figures_reads_them_as_zero() -> None:
    [result] = convert(
        result_message(usage={"input_tokens": "many", "output_tokens": 1e400, "cache_read_input_tokens": None})
    )
    assert isinstance(result, Result) and (result.input_tokens, result.output_tokens) == (0, 0)


def test_the_init_message_and_other_system_messages() -> None:
    init = sdk.SystemMessage(
        subtype="init",
        data={
            "type": "system",
            "subtype": "init",
            "session_id": SID,
            "cwd": "/w",
            "model": "m",
            "tools": ["Write", "mcp__echo__echo", 7],
            "mcp_servers": [{"name": "echo", "status": "connected", "source": "dynamic"}, "odd"],
        },
    )
    assert convert(init) == [
        Init(
            session_id=SID,
            cwd="/w",
            model="m",
            tools=("Write", "mcp__echo__echo"),
            mcp_servers=(McpStatus(name="echo", status="connected"),),
        )
    ]
    denied = {"type": "system", "subtype": "permission_denied", "tool_name": "Write", "message": "not granted"}
    assert convert(sdk.SystemMessage(subtype="permission_denied", data=denied)) == [
        Notice(subtype="permission_denied", data=denied)
    ]
    started = sdk.TaskStartedMessage(
        subtype="task_started", data={"task_id": "t1"}, task_id="t1", description="d", uuid="u", session_id=SID
    )
    assert convert(started) == [Notice(subtype="task_started", data={"task_id": "t1"})]


def test_messages_of_other_kinds_are_kept_as_unknown() -> None:
    event = sdk.RateLimitEvent(rate_limit_info=sdk.RateLimitInfo(status="allowed"), uuid="u", session_id=SID)
    assert convert(event) == [Unknown(type="RateLimitEvent", data={})]
