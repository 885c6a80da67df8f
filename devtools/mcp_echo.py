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
