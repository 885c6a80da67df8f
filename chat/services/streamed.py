"""What a turn's events become as they stream: saved (:class:`.recording.Recorder`) and shown.

Assistant text streams into one event; tool calls and results become cards (a subagent's nested
under its Agent call); notices say what the CLI did (a compaction, a refusal, retries); the context
meter and the todo panel follow. Called by :mod:`.execution` for every event of a turn.
"""

from __future__ import annotations

from typing import Any

from drivers import claude

from ..models import Event, Session
from . import agents, mcp, memory, slash, todos
from .recording import Recorder

TOOL_RESULT_KEEP_CHARS = 20_000


async def record(event: claude.Event, recorder: Recorder, *, denied: bool = False) -> None:
    """Save ``event``; ``denied``: a tool result whose call a person's prompt denied."""
    match event:
        case claude.TextDelta(text=text):
            await recorder.delta(text)
        case claude.Text(text=text) if (command := slash.built_in(recorder.turn.command)) and command.plain_output:
            await recorder.add(kind=Event.Kind.TEXT, text=text, data={"plain": True})
        case claude.Text(text=text, parent=str(parent)):
            # A subagent's words: shown under its Agent call's card, never merged into the answer.
            await recorder.add(kind=Event.Kind.TEXT, text=text, data={"parent": parent})
        case claude.Text(text=text):
            await recorder.text(text)
        case claude.ToolUse(id=tool_id, name=name, input=tool_input, parent=parent):
            recorder.tool_names[tool_id] = name
            data: dict[str, Any] = {"id": tool_id, "input": tool_input}
            if parent:
                data["parent"] = parent
            if tool_id in recorder.prompted:
                data["in_prompt"] = True  # its prompt, shown before it, already shows the call's card
            await recorder.add(kind=Event.Kind.TOOL_USE, name=name, data=data)
        case claude.ToolResult(tool_use_id=tool_id, content=content, is_error=is_error, parent=parent):
            kept = content if len(content) <= TOOL_RESULT_KEEP_CHARS else content[:TOOL_RESULT_KEEP_CHARS] + "\n… (cut)"
            data = {"tool_use_id": tool_id, "size": len(content), "tool": recorder.tool_names.get(tool_id, "")}
            if parent:
                data["parent"] = parent
            if denied:
                data["denied_in_prompt"] = True  # kept for the record; its prompt says "Denied" once
            await recorder.add(kind=Event.Kind.TOOL_RESULT, text=kept, is_error=is_error, data=data)
            if data["tool"] in (todos.CREATE, todos.UPDATE):
                await todos.changed(recorder.turn.session)
        case claude.Init() as init if recorder.turn.session.kind == Session.Kind.CHAT:
            await recorder.mcp_seen(mcp.seen_of(init))
        case claude.Entry(uuid=uuid) if claude.is_uuid(uuid):
            recorder.cli_uuid = uuid
        case claude.Notice(subtype="files_rewound"):
            await recorder.add(
                kind=Event.Kind.NOTICE, name="files_rewound", text="The files were put back as they were at the rewind."
            )
        case claude.Notice(subtype="files_not_rewound", data=data):
            await recorder.add(
                kind=Event.Kind.NOTICE,
                name="files_not_rewound",
                is_error=True,
                text=(
                    f"The files could not be put back ({data.get('error')}); they are as the later messages left "
                    "them. Undo the changes by hand, or ask Claude Code to."
                ),
            )
        case claude.StreamUsage(started=True, input_tokens=tokens) if tokens:
            await recorder.context(tokens=tokens)
        case claude.Result(context_window=window, sent=sent):
            if claude.is_uuid(sent):
                await recorder.prompt_sent_as(sent)
            await recorder.context(window=window or None)
        case claude.Notice(subtype="instructions_loaded", data=data):
            await memory.record(recorder, data)
        case claude.Notice(subtype="compact_boundary", data=data):
            await compacted(recorder, claude.as_dict(data.get("compact_metadata")))
        case claude.Notice(subtype="permission_denied", data=data):
            await recorder.add(
                kind=Event.Kind.NOTICE,
                name="permission_denied",
                is_error=True,
                text=str(
                    data.get("message") or data.get("reason") or "A tool call was refused by the permission mode."
                ),
            )
        case claude.Notice(subtype="api_retry", data=data) if data.get("attempt") in (1, None):
            # Said once, when the CLI starts retrying (it may retry ten times): the turn's outcome says the rest.
            status = data.get("error_status")
            what = (
                f"The API at {agents.api_url()} answered {status}"
                if status
                else f"Cannot reach the API at {agents.api_url()}"
            )
            tries = f"up to {data['max_retries']} times" if data.get("max_retries") else "a few times"
            await recorder.add(kind=Event.Kind.NOTICE, name="api_retry", text=f"{what}; Claude Code retries {tries}.")


async def compacted(recorder: Recorder, meta: dict[str, Any]) -> None:
    """The CLI compacted the conversation (``/compact``, or by itself when the context was full):
    said in the chat, and the meter shows what is left."""
    before, after = claude.as_int(meta.get("pre_tokens")), claude.as_int(meta.get("post_tokens"))
    figures = f": {before:,} → {after:,} tokens" if before and after else ""
    how = "Compacted" if meta.get("trigger") == "manual" else "The context was full, so Claude Code compacted it"
    await recorder.add(kind=Event.Kind.NOTICE, name="compacted", text=f"{how}{figures}.", data=dict(meta))
    await recorder.context(tokens=after or None)
