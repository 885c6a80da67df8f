"""An offline stand-in for the Anthropic Messages API with scripted answers.

The real Claude Code CLI talks to it through ``ANTHROPIC_BASE_URL``: the demo mode of the
run command and the test-suite both use it, so every code path of the CLI (sessions,
transcripts, tools, permissions) runs for real without a network or an account.

Scripted answers are chosen from the user's latest text (see ``_plan``):

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
- ``read PATH`` answers with a ``Read`` tool call; ``which model`` names the model the request asked for.
- a message that carries images answers what it saw of them (their count, types and sizes).
- a message with a line ``Continue with:`` (the tasks feature resumes a session that way) is
  answered as if only the text after the last such line had been sent.
- in plan mode (the CLI says so in its system message), a request is answered with a plan: a
  ``Write`` of the plan file the CLI names, then ``ExitPlanMode``; ``go ahead with the plan`` then
  does what the planned request asked.
- a compaction (the CLI's request for a summary) is answered with one that keeps the names said.
- anything else gets a short demo answer that says it is the stand-in.

No Django import: it runs as ``python -m devtools.stub_api --port N``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL = "claude-stand-in"
_NAME_RE = re.compile(r"\bmy name is (\w+)", re.IGNORECASE)
_CWD_RE = re.compile(r"Primary working directory: (.+)")


@dataclass
class Plan:
    """What the stand-in answers: text, or one tool call, streamed over ``seconds``."""

    text: str = ""
    tool: tuple[str, dict[str, Any]] | None = None
    seconds: float = 0.0
    output_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _texts(content: Any) -> list[str]:
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


def _user_text(message: dict[str, Any]) -> str:
    """The person's own words in a user message, without the CLI's system reminders and markers."""
    parts = [
        t
        for t in _texts(message.get("content"))
        if not t.lstrip().startswith("<system-reminder>") and not t.lstrip().startswith(_INTERRUPT_MARKERS)
    ]
    return "\n".join(parts).strip()


def _tool_results(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    out = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content")
            out.append(" ".join(_texts(inner)) if isinstance(inner, list) else str(inner or ""))
    return out


def _images(message: dict[str, Any]) -> list[str]:
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


def _cwd(body: dict[str, Any]) -> str | None:
    sources = [body.get("system")] + [m.get("content") for m in body.get("messages", []) if m.get("role") == "system"]
    for src in sources:
        for text in _texts(src):
            match = _CWD_RE.search(text)
            if match:
                return match.group(1).strip()
    return None


def _resolve(path: str, cwd: str | None) -> str:
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


def _last_tool(messages: list[dict[str, Any]]) -> str:
    """The name of the tool the last assistant message called, if it called one."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    return str(block.get("name", ""))
            return ""
    return ""


def _edit_step(said: str, messages: list[dict[str, Any]], cwd: str | None) -> Plan | None:
    """``edit PATH: OLD => NEW``: a Read first, then (after the Read's result) the Edit."""
    match = _EDIT_RE.fullmatch(said)
    if match is None:
        return None
    path = _resolve(match.group(1), cwd)
    done = _last_tool(messages) if _tool_results(messages[-1]) else ""
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
        for text in _texts(message.get("content")) if message.get("role") == "system" else []:
            if "Exited Plan Mode" in text:
                said = None
            if "Plan mode is active" in text:
                said = text
    return said


def _plan_mode_step(body: dict[str, Any], messages: list[dict[str, Any]], asked: str) -> Plan | None:
    """In the CLI's plan mode: write the plan file it names, then present the plan with ExitPlanMode."""
    system = _plan_mode_said(body)
    if system is None:
        return None
    done = _last_tool(messages) if _tool_results(messages[-1]) else ""
    if done == "ExitPlanMode":
        return Plan(text="The plan is ready; I will wait until you run it.")
    plan = f"# Plan\n\n1. Do what was asked: {asked}\n2. Report what changed.\n"
    if done == "Write":
        return Plan(tool=("ExitPlanMode", {}))
    found = _PLAN_FILE_RE.search(system)
    if found is None:
        return Plan(tool=("ExitPlanMode", {"plan": plan}))
    return Plan(tool=("Write", {"file_path": found.group(1), "content": plan}))


def _planned_request(messages: list[dict[str, Any]]) -> str:
    """What the person asked before the latest ExitPlanMode call: what "go ahead" carries out."""
    asked = planned = ""
    for message in messages:
        if message.get("role") == "user" and (text := _user_text(message)) and not text.lower().startswith(GO_AHEAD):
            asked = text
        if message.get("role") == "assistant" and _last_tool([message]) == "ExitPlanMode":
            planned = asked
    return planned


# How the CLI asks for a summary when it compacts a conversation (``/compact``, or a full context).
_COMPACT_ASK = "CRITICAL: Respond with TEXT ONLY"


def _summary(earlier: list[dict[str, Any]]) -> str:
    """A compaction's summary: what the person said of themselves survives it."""
    names = [found.group(0) for m in earlier if (found := _NAME_RE.search(_user_text(m)))]
    kept = "; ".join(f"the person said: {name}" for name in names) or "nothing to keep"
    return f"<analysis>Short conversation.</analysis>\n<summary>Summary of the conversation: {kept}.</summary>"


def _todo_step(items: str, messages: list[dict[str, Any]]) -> Plan:
    """``todo: A; B; ...``: a TaskCreate for each item (the CLI's todo tools), then the first marked
    done (the CLI numbers items from 1), then a word."""
    subjects = [item.strip() for item in items.split(";") if item.strip()]
    last_text = max(i for i, m in enumerate(messages) if m.get("role") == "user" and _user_text(m))
    step = sum(1 for m in messages[last_text:] if m.get("role") == "assistant")
    if step < len(subjects):
        return Plan(tool=("TaskCreate", {"subject": subjects[step], "description": subjects[step]}))
    if step == len(subjects):
        return Plan(tool=("TaskUpdate", {"taskId": "1", "status": "completed"}))
    return Plan(text=f"{len(subjects)} items on the list; the first is done.")


def _plan(body: dict[str, Any]) -> Plan:
    messages = [m for m in body.get("messages", []) if m.get("role") in ("user", "assistant")]
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return Plan(text="Hello from the offline stand-in.")
    last = users[-1]
    asked = next((text for text in map(_user_text, reversed(users)) if text), "")
    if asked.lower().startswith(GO_AHEAD):
        asked = _planned_request(messages) or asked
    planning = _plan_mode_step(body, messages, asked)
    if planning is not None:
        return planning
    if asked.lower().startswith("todo:"):  # its steps follow the tool results
        return _todo_step(asked[len("todo:") :], messages)
    step = _edit_step(asked, messages, _cwd(body))
    if step is not None:
        return step
    results = _tool_results(last)
    said = _user_text(last)
    # After a stopped tool call the CLI sends its refusal and the next message together: the
    # person's words are what to answer then.
    if results and not said:
        summary = results[0].strip().replace("\n", " ")[:200]
        return Plan(text=f"Done. The tool said: {summary}")
    if said.lower().startswith(GO_AHEAD):
        said = _planned_request(messages) or said
    if "\nContinue with:\n" in said:
        said = said.rsplit("\nContinue with:\n", 1)[1].strip()
    if said.startswith(_COMPACT_ASK):
        return Plan(text=_summary(users[:-1]))
    lowered = said.lower()
    cwd = _cwd(body)
    images = _images(last)
    if images:
        return Plan(text=f"I see {len(images)} image{'s' if len(images) > 1 else ''}: {'; '.join(images)}.")
    if lowered.startswith("which model"):
        return Plan(text=f"This answer comes from the model {body.get('model')}.")
    if lowered.startswith("read "):
        path = said[len("read ") :].strip().split()[0] if said[len("read ") :].strip() else ""
        return Plan(tool=("Read", {"file_path": _resolve(path, cwd)}))
    if lowered.startswith("write ") and ":" in said:
        path, content = said[len("write ") :].split(":", 1)
        return Plan(tool=("Write", {"file_path": _resolve(path, cwd), "content": content.strip() + "\n"}))
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
            found = _NAME_RE.search(" ".join(_texts(earlier.get("content"))))
            if found:
                return Plan(text=f"Your name is {found.group(1)}.")
        return Plan(text="I don't know your name yet.")
    found = _NAME_RE.search(said)
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


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _stream(plan: Plan, input_tokens: int) -> list[tuple[bytes, float]]:
    """The SSE frames of one answer, each with the pause to take before sending it."""
    msg_id = f"msg_{uuid.uuid4().hex[:24]}"
    frames: list[tuple[bytes, float]] = []
    usage = {"input_tokens": input_tokens, "output_tokens": 1}
    frames.append(
        (
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": MODEL,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                },
            ),
            0.0,
        )
    )
    output_tokens = 0
    if plan.tool:
        name, tool_input = plan.tool
        frames.append(
            (
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {
                            "type": "tool_use",
                            "id": f"toolu_{uuid.uuid4().hex[:24]}",
                            "name": name,
                            "input": {},
                        },
                    },
                ),
                0.0,
            )
        )
        frames.append(
            (
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(tool_input)},
                    },
                ),
                0.0,
            )
        )
        frames.append((_sse("content_block_stop", {"type": "content_block_stop", "index": 0}), 0.0))
        stop_reason = "tool_use"
        output_tokens = 20
    else:
        frames.append(
            (
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                ),
                0.0,
            )
        )
        pieces = re.findall(r"\S+\s*|\s+", plan.text) or [plan.text]
        if plan.extra.get("pieces"):  # smaller pieces: markers and fences arrive split, as from a model
            size = int(plan.extra["pieces"])
            pieces = [plan.text[i : i + size] for i in range(0, len(plan.text), size)]
        pause = plan.seconds / len(pieces) if plan.seconds else 0.0
        for piece in pieces:
            frames.append(
                (
                    _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                    ),
                    pause,
                )
            )
        frames.append((_sse("content_block_stop", {"type": "content_block_stop", "index": 0}), 0.0))
        stop_reason = "end_turn"
        output_tokens = max(1, len(plan.text) // 4)
    if plan.output_tokens is not None:
        output_tokens = plan.output_tokens
    frames.append(
        (
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            0.0,
        )
    )
    frames.append((_sse("message_stop", {"type": "message_stop"}), 0.0))
    return frames


def _whole(plan: Plan, input_tokens: int) -> dict[str, Any]:
    """The same answer as one JSON body, for requests that do not ask to stream."""
    if plan.tool:
        name, tool_input = plan.tool
        content = [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": tool_input}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": plan.text}]
        stop = "end_turn"
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": plan.output_tokens or 10},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json(200, {"ok": True, "stand_in": True})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad JSON"}})
            return
        input_tokens = max(1, len(raw) // 4)
        if "count_tokens" in self.path:
            self._json(200, {"input_tokens": input_tokens})
            return
        if not self.path.startswith("/v1/messages"):
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
            return
        plan = _plan(body)
        self.server.record(body, plan, headers={name.lower(): value for name, value in self.headers.items()})
        if not body.get("stream"):
            self._json(200, _whole(plan, input_tokens))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for frame, pause in _stream(plan, input_tokens):
                if pause:
                    time.sleep(pause)
                self.wfile.write(frame)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI was stopped mid-answer: nothing to do


class StubServer(ThreadingHTTPServer):
    """The stand-in, serving on 127.0.0.1 in a background thread."""

    daemon_threads = True

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, keep_requests: int = 1000) -> None:
        super().__init__((host, port), _Handler)
        # Each body holds the CLI's whole system prompt, tools and conversation (100 KB and more):
        # a long-running demo must not keep them all.
        self.keep_requests = keep_requests
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, body: dict[str, Any], plan: Plan, *, headers: dict[str, str] | None = None) -> None:
        """Keep a request (its body, what was answered and its headers, names in lower case)."""
        with self._lock:
            self.requests.append({"body": body, "plan": plan, "headers": headers or {}})
            del self.requests[: max(0, len(self.requests) - self.keep_requests)]

    def start(self) -> StubServer:
        self._thread = threading.Thread(target=self.serve_forever, name="stub-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Offline Messages-API stand-in with scripted answers")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default): any free port")
    parser.add_argument("--url-file", help="write the URL it listens on to this file once it listens")
    args = parser.parse_args(argv)
    try:
        server = StubServer(port=args.port, host=args.host, keep_requests=0)
    except OSError as exc:
        # Never fall back to whatever holds the port: that may be another checkout's stand-in.
        sys.exit(
            f"The demo's API stand-in cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. "
            "Another program (another checkout's demo?) uses that port: unset DEMO_API_PORT to take any free "
            "port, or set it to a free one."
        )
    if args.url_file:
        Path(args.url_file).write_text(server.url + "\n")
    print(f"stand-in listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
