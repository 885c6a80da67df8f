"""An offline stand-in for the Anthropic Messages API with scripted answers.

The real Claude Code CLI talks to it through ``ANTHROPIC_BASE_URL``: the demo mode of the
run command and the test-suite both use it, so every code path of the CLI (sessions,
transcripts, tools, permissions) runs for real without a network or an account.

Which scripted answer a request gets is :mod:`devtools.stub_answers`'s (its text lists them);
this module serves it: over HTTP, streamed as server-sent events as the API streams, or whole.

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

from .stub_answers import plan as plan_of
from .stub_steps import Plan

MODEL = "claude-stand-in"


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
        plan = plan_of(body)
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
