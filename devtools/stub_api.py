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

No Django import: it runs as ``python -m devtools.stub_api --port N``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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

MODEL = "claude-stand-in"


def _plan(body: dict[str, Any]) -> Plan:
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
