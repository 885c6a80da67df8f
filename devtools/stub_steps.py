"""What the Messages-API stand-in (:mod:`devtools.stub_api`) reads of a request, and its scripted
answers that take several steps: an edit (a Read first), plan mode (the plan file, then
ExitPlanMode), a compaction's summary, a todo list. No Django import.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

NAME_RE = re.compile(r"\bmy name is (\w+)", re.IGNORECASE)
_CWD_RE = re.compile(r"Primary working directory: (.+)")


@dataclass
class Plan:
    """What the stand-in answers: text, or one tool call, streamed over ``seconds``."""

    text: str = ""
    tool: tuple[str, dict[str, Any]] | None = None
    seconds: float = 0.0
    output_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append(block.get("text", ""))
    return out


# What the CLI puts before the next message after an interrupted turn, or after the model or the
# permission mode was changed on a running process (it records the change as a local /model
# command, with a caveat): not the person's words.
_INTERRUPT_MARKERS = (
    "[Request interrupted by user",
    # After a compaction, the summary opens the next user message.
    "This session is being continued from a previous conversation",
    "<local-command-caveat>",
    "<command-name>",
    "<local-command-stdout>",
)


def user_text(message: dict[str, Any]) -> str:
    """The person's own words in a user message, without the CLI's system reminders and markers."""
    parts = [
        t
        for t in texts(message.get("content"))
        if not t.lstrip().startswith("<system-reminder>") and not t.lstrip().startswith(_INTERRUPT_MARKERS)
    ]
    return "\n".join(parts).strip()


def instructions(body: dict[str, Any]) -> str:
    """What the CLI sent the model besides the person's words: the system prompt and its
    ``<system-reminder>`` blocks (where it puts the CLAUDE.md files it read)."""
    system = body.get("system")
    parts = texts(system) if isinstance(system, list | str) else []
    for message in body.get("messages", []):
        if message.get("role") == "user":
            parts += [t for t in texts(message.get("content")) if t.lstrip().startswith("<system-reminder>")]
    return "\n".join(parts)


def tool_results(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    out = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content")
            out.append(" ".join(texts(inner)) if isinstance(inner, list) else str(inner or ""))
    return out


def images_of(message: dict[str, Any]) -> list[str]:
    """The images of a user message, each as "media type, N bytes"."""
    content = message.get("content")
    out = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "image":
            source = block.get("source") or {}
            size = (
                len(base64.b64decode(source.get("data") or "", validate=False)) if source.get("type") == "base64" else 0
            )
            out.append(f"{source.get('media_type', 'an image')}, {size} bytes")
    return out


def cwd_of(body: dict[str, Any]) -> str | None:
    sources = [body.get("system")] + [m.get("content") for m in body.get("messages", []) if m.get("role") == "system"]
    for src in sources:
        for text in texts(src):
            match = _CWD_RE.search(text)
            if match:
                return match.group(1).strip()
    return None


def resolve(path: str, cwd: str | None) -> str:
    path = path.strip()
    if path.startswith("/") or not cwd:
        return path
    return f"{cwd.rstrip('/')}/{path}"


MARKDOWN_ANSWER = (
    "## A plan\n\nHere is **bold text** and `inline code`:\n\n- first item\n- second item\n\n"
    '```python\ndef greet(name):\n    return f"Hello, {name}!"\n```\n\n'
    "Raw HTML stays text: <script>alert('x')</script> <img src=x onerror=alert(1)> done."
)
_EDIT_RE = re.compile(r"edit\s+(.+?):\s*(.*?)\s*=>\s*(.*)", re.IGNORECASE | re.DOTALL)


def last_tool(messages: list[dict[str, Any]]) -> str:
    """The name of the tool the last assistant message called, if it called one."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    return str(block.get("name", ""))
            return ""
    return ""


def edit_step(said: str, messages: list[dict[str, Any]], cwd: str | None) -> Plan | None:
    """``edit PATH: OLD => NEW``: a Read first, then (after the Read's result) the Edit."""
    match = _EDIT_RE.fullmatch(said)
    if match is None:
        return None
    path = resolve(match.group(1), cwd)
    done = last_tool(messages) if tool_results(messages[-1]) else ""
    if done == "Edit":
        return None
    if done == "Read":
        return Plan(tool=("Edit", {"file_path": path, "old_string": match.group(2), "new_string": match.group(3)}))
    return Plan(tool=("Read", {"file_path": path}))


_PLAN_FILE_RE = re.compile(r"create your plan at (\S+?\.md)")
GO_AHEAD = "go ahead with the plan"


def _plan_mode_said(body: dict[str, Any]) -> str | None:
    """The CLI's latest word on plan mode in its system messages (they stay in the conversation):
    the text that says it is active, or None once it says it was left (or never said it)."""
    said = None
    for message in body.get("messages", []):
        for text in texts(message.get("content")) if message.get("role") == "system" else []:
            if "Exited Plan Mode" in text:
                said = None
            if "Plan mode is active" in text:
                said = text
    return said


def plan_mode_step(body: dict[str, Any], messages: list[dict[str, Any]], asked: str) -> Plan | None:
    """In the CLI's plan mode: write the plan file it names, then present the plan with ExitPlanMode."""
    system = _plan_mode_said(body)
    if system is None:
        return None
    done = last_tool(messages) if tool_results(messages[-1]) else ""
    if done == "ExitPlanMode":
        return Plan(text="The plan is ready; I will wait until you run it.")
    plan = f"# Plan\n\n1. Do what was asked: {asked}\n2. Report what changed.\n"
    if done == "Write":
        return Plan(tool=("ExitPlanMode", {}))
    found = _PLAN_FILE_RE.search(system)
    if found is None:
        return Plan(tool=("ExitPlanMode", {"plan": plan}))
    return Plan(tool=("Write", {"file_path": found.group(1), "content": plan}))


def planned_request(messages: list[dict[str, Any]]) -> str:
    """What the person asked before the latest ExitPlanMode call: what "go ahead" carries out."""
    asked = planned = ""
    for message in messages:
        if message.get("role") == "user" and (text := user_text(message)) and not text.lower().startswith(GO_AHEAD):
            asked = text
        if message.get("role") == "assistant" and last_tool([message]) == "ExitPlanMode":
            planned = asked
    return planned


# How the CLI asks for a summary when it compacts a conversation (``/compact``, or a full context).
COMPACT_ASK = "CRITICAL: Respond with TEXT ONLY"


def summary_of(earlier: list[dict[str, Any]]) -> str:
    """A compaction's summary: what the person said of themselves survives it."""
    names = [found.group(0) for m in earlier if (found := NAME_RE.search(user_text(m)))]
    kept = "; ".join(f"the person said: {name}" for name in names) or "nothing to keep"
    return f"<analysis>Short conversation.</analysis>\n<summary>Summary of the conversation: {kept}.</summary>"


def todo_step(items: str, messages: list[dict[str, Any]]) -> Plan:
    """``todo: A; B; ...``: a TaskCreate for each item (the CLI's todo tools), then the first marked
    done (the CLI numbers items from 1), then a word."""
    subjects = [item.strip() for item in items.split(";") if item.strip()]
    last_text = max(i for i, m in enumerate(messages) if m.get("role") == "user" and user_text(m))
    step = sum(1 for m in messages[last_text:] if m.get("role") == "assistant")
    if step < len(subjects):
        return Plan(tool=("TaskCreate", {"subject": subjects[step], "description": subjects[step]}))
    if step == len(subjects):
        return Plan(tool=("TaskUpdate", {"taskId": "1", "status": "completed"}))
    return Plan(text=f"{len(subjects)} items on the list; the first is done.")
