"""Which scripted answer the Messages-API stand-in (:mod:`devtools.stub_api`) gives a request.

Its answers are chosen from the user's latest text (see :func:`plan`):

- ``my name is X`` / ``what is my name`` prove that a session remembers earlier turns: the
  answer is looked up in the conversation the CLI sends, so it only works if the CLI
  resumed the right transcript.
- ``write PATH: CONTENT`` answers with a ``Write`` tool call, ``run: COMMAND`` with a
  ``Bash`` tool call (relative paths are resolved against the session's working directory).
- ``slow SECONDS`` streams a long answer word by word over that many seconds.
- ``markdown SECONDS`` streams :data:`MARKDOWN_ANSWER` (a heading, bold text, a list, a Python
  code fence and raw HTML) in small pieces over that many seconds.
- ``edit PATH: OLD => NEW`` answers with a ``Read`` of PATH and, once it was read (the CLI edits only
  files it read), an ``Edit`` that replaces OLD with NEW.
- ``echo: TEXT`` answers TEXT; ``tokens N`` reports N output tokens of usage.
- ``todo: A; B`` puts A and B on the agent's todo list (TaskCreate) and marks A done (TaskUpdate).
- ``delegate: TASK`` starts a subagent (the ``Agent`` tool) that is given TASK (``read notes.txt``,
  say) as its own request.
- ``mcp SERVER TOOL TEXT`` calls the MCP tool ``mcp__SERVER__TOOL`` with ``{"text": TEXT}`` (directly:
  the CLI lists MCP tools as deferred, to be loaded by ToolSearch, but runs a direct call).
- ``told: WORD`` answers whether WORD is in what the CLI sent besides the person's words (its
  system prompt and reminders, where the CLAUDE.md files it read go): "I was told WORD." or not.
- ``read PATH`` answers with a ``Read`` tool call; ``which model`` names the model the request asked for.
- a message that carries images answers what it saw of them (their count, types and sizes).
- a message with a line ``Continue with:`` (the tasks feature resumes a session that way) is
  answered as if only the text after the last such line had been sent.
- in plan mode (the CLI says so in its system message), a request is answered with a plan: a
  ``Write`` of the plan file the CLI names, then ``ExitPlanMode``; ``go ahead with the plan`` then
  does what the planned request asked.
- a compaction (the CLI's request for a summary) is answered with one that keeps the names said.
- anything else gets a short demo answer that says it is the stand-in.

Kept apart from :mod:`devtools.stub_api`, which serves the answer (HTTP, the streamed events),
so the list of what can be said to the stand-in reads in one place; the answers that take several
steps are in :mod:`devtools.stub_steps`. No Django import.
"""

from __future__ import annotations

import re
from typing import Any

from .stub_steps import (
    COMPACT_ASK,
    GO_AHEAD,
    MARKDOWN_ANSWER,
    NAME_RE,
    Plan,
    cwd_of,
    edit_step,
    images_of,
    instructions,
    plan_mode_step,
    planned_request,
    resolve,
    summary_of,
    texts,
    todo_step,
    tool_results,
    user_text,
)


def plan(body: dict[str, Any]) -> Plan:
    """What to answer the request ``body`` (the Messages API's JSON): text, or one tool call."""
    messages = [m for m in body.get("messages", []) if m.get("role") in ("user", "assistant")]
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return Plan(text="Hello from the offline stand-in.")
    last = users[-1]
    asked = next((text for text in map(user_text, reversed(users)) if text), "")
    if asked.lower().startswith(GO_AHEAD):
        asked = planned_request(messages) or asked
    planning = plan_mode_step(body, messages, asked)
    if planning is not None:
        return planning
    if asked.lower().startswith("todo:"):  # its steps follow the tool results
        return todo_step(asked[len("todo:") :], messages)
    step = edit_step(asked, messages, cwd_of(body))
    if step is not None:
        return step
    results = tool_results(last)
    said = user_text(last)
    # After a stopped tool call the CLI sends its refusal and the next message together: the
    # person's words are what to answer then.
    if results and not said:
        summary = results[0].strip().replace("\n", " ")[:200]
        return Plan(text=f"Done. The tool said: {summary}")
    if said.lower().startswith(GO_AHEAD):
        said = planned_request(messages) or said
    if "\nContinue with:\n" in said:
        said = said.rsplit("\nContinue with:\n", 1)[1].strip()
    if said.startswith(COMPACT_ASK):
        return Plan(text=summary_of(users[:-1]))
    lowered = said.lower()
    cwd = cwd_of(body)
    images = images_of(last)
    if images:
        return Plan(text=f"I see {len(images)} image{'s' if len(images) > 1 else ''}: {'; '.join(images)}.")
    if lowered.startswith("told:"):
        word = said[len("told:") :].strip()
        told = bool(word) and word in instructions(body)
        return Plan(text=f"I was told {word}." if told else f"I was not told {word}.")
    if lowered.startswith("which model"):
        return Plan(text=f"This answer comes from the model {body.get('model')}.")
    if lowered.startswith("read "):
        path = said[len("read ") :].strip().split()[0] if said[len("read ") :].strip() else ""
        return Plan(tool=("Read", {"file_path": resolve(path, cwd)}))
    if lowered.startswith("write ") and ":" in said:
        path, content = said[len("write ") :].split(":", 1)
        return Plan(tool=("Write", {"file_path": resolve(path, cwd), "content": content.strip() + "\n"}))
    if lowered.startswith("delegate:"):
        # A subagent (the CLI's Agent tool, run in the foreground): it reads the rest as its own task.
        task = said[len("delegate:") :].strip()
        return Plan(
            tool=(
                "Agent",
                {
                    "description": "Delegated work",
                    "prompt": task,
                    "subagent_type": "claude",
                    "run_in_background": False,
                },
            )
        )
    mcp = re.match(r"mcp\s+([a-z0-9_-]+)\s+([A-Za-z0-9_-]+)\s*(.*)", said, re.DOTALL)
    if mcp:
        # A tool of an MCP server, by the name the CLI offers it under.
        return Plan(tool=(f"mcp__{mcp.group(1)}__{mcp.group(2)}", {"text": mcp.group(3).strip()}))
    if lowered.startswith("run:"):
        command = said[len("run:") :].strip()
        return Plan(tool=("Bash", {"command": command, "description": "Run the requested command"}))
    if lowered.startswith("slow"):
        match = re.match(r"slow\s+([\d.]+)", lowered)
        seconds = float(match.group(1)) if match else 3.0
        words = [f"word{i}" for i in range(1, max(2, int(seconds * 10)) + 1)]
        return Plan(text="Slow answer: " + " ".join(words) + " (end of slow answer)", seconds=seconds)
    if lowered.startswith("markdown"):
        match = re.match(r"markdown\s+([\d.]+)", lowered)
        return Plan(text=MARKDOWN_ANSWER, seconds=float(match.group(1)) if match else 2.0, extra={"pieces": 3})
    if lowered.startswith("echo:"):
        return Plan(text=said[len("echo:") :].strip())
    match = re.match(r"tokens\s+(\d+)", lowered)
    if match:
        return Plan(text=f"Reporting {match.group(1)} output tokens.", output_tokens=int(match.group(1)))
    if "what is my name" in lowered:
        # The message itself too: after a compaction the summary comes in the same user message.
        for earlier in reversed(users):
            found = NAME_RE.search(" ".join(texts(earlier.get("content"))))
            if found:
                return Plan(text=f"Your name is {found.group(1)}.")
        return Plan(text="I don't know your name yet.")
    found = NAME_RE.search(said)
    if found:
        return Plan(text=f"Nice to meet you, {found.group(1)}.")
    short = said if len(said) <= 200 else said[:200] + "…"
    return Plan(
        text=(
            "This is the offline demo stand-in, not the real model. You said: "
            f"{short}\n\nTry `write notes.txt: hello`, `run: ls -la`, `my name is Ada` then "
            "`what is my name`, or `slow 5`."
        )
    )
