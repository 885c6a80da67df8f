"""A tiny MCP server over stdio for the tests and the demo: one tool, ``echo``.

MCP's stdio transport is JSON-RPC 2.0, one message a line. ``echo`` answers its ``text`` and
says, for each ``--probe PATH`` it was started with, whether that path exists where it runs: run
by the CLI inside the agents' sandbox, the server's data folder must not. Standard library only,
and Python 3.11 as Debian's ``/usr/bin/python3`` (the sandbox shows ``/usr``, not the project's
virtualenv): an admin may start it as ``/usr/bin/python3 -c <this file's text> --probe PATH``.
No Django import.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NAME = "echo"
TOOL = {
    "name": NAME,
    "description": "Answers the text it is given, and whether the paths it probes exist where it runs.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def _probes(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--probe"]


def _echo(arguments: dict[str, Any], probes: list[str]) -> str:
    said = f"echo: {arguments.get('text', '')}"
    for path in probes:
        said += f"; {path} {'is visible' if os.path.exists(path) else 'is not there'}"
    return f"{said}; uid {os.getuid()}"


def answer(request: dict[str, Any], probes: list[str]) -> dict[str, Any] | None:
    """The JSON-RPC answer to ``request`` (None for a notification)."""
    if "id" not in request:
        return None
    method, params = request.get("method"), request.get("params") or {}
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
    if method == "initialize":
        reply["result"] = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "mcp-echo", "version": "1.0"},
        }
    elif method == "tools/list":
        reply["result"] = {"tools": [TOOL]}
    elif method == "tools/call" and params.get("name") == NAME:
        text = _echo(params.get("arguments") or {}, probes)
        reply["result"] = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "ping":
        reply["result"] = {}
    else:
        reply["error"] = {"code": -32601, "message": f"unknown method {method}"}
    return reply


def serve_http(*, secret: str, port: int = 0) -> ThreadingHTTPServer:
    """The same server over MCP's streamable HTTP (a JSON answer to each POST), on 127.0.0.1, started
    in a thread: its ``echo`` also says whether the request carried ``Authorization: Bearer <secret>``
    (never the header itself)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(size) or b"{}")
            reply = answer(request, []) if isinstance(request, dict) else None
            if reply is None:
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            result = reply.get("result") or {}
            for block in result.get("content") or []:
                authorized = self.headers.get("authorization") == f"Bearer {secret}"
                block["text"] += f"; authorized: {'yes' if authorized else 'no'}"
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # no stream of the server's own messages
            self.send_response(405)
            self.send_header("allow", "POST")
            self.send_header("content-length", "0")
            self.end_headers()

        do_DELETE = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    probes = _probes(sys.argv[1:])
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        reply = answer(request, probes) if isinstance(request, dict) else None
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
