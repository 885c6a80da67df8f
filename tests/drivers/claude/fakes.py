"""Fake ``claude`` programs for the live-session tests: Python scripts written into tmp_path that
speak just enough of the CLI's stream-json control protocol (as the Agent SDK drives it).

The SDK writes one JSON object a line to the CLI's stdin: first a ``control_request`` with
``{"subtype": "initialize"}`` (answered by a ``control_response`` carrying the same
``request_id``), then a ``user`` line per turn, and ``control_request`` lines such as
``interrupt``. The CLI answers a turn with ``system``/``assistant``/``user``/``stream_event``
lines and one ``result`` line. What each fake does on a user line is the test's own code (the
``on_turn`` body, run with ``msg`` bound to the line); everything the fake read and how it was
started is written to ``record.jsonl`` beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from drivers import claude
from drivers.claude import LiveSession, Permission

SID = "0b6f4b52-3c1e-4d7a-9f51-2a1d6c8e9b30"

# The protocol half every fake shares; {record} is the path of its record file.
_PROTOCOL = """\
import json, os, signal, subprocess, sys, time

RECORD = {record!r}
SEEN = []  # every line read from stdin


def record(kind, value):
    with open(RECORD, "a") as f:
        f.write(json.dumps({{"kind": kind, "value": value}}) + "\\n")


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()


def init():
    out({{"type": "system", "subtype": "init", "session_id": {sid!r}, "cwd": os.getcwd(), "model": "fake",
          "claude_code_version": "2.1.330"}})


def say(text):
    out({{"type": "assistant", "message": {{"model": "fake", "content": [{{"type": "text", "text": text}}]}}}})


def result(text="done", is_error=False, **extra):
    out({{"type": "result", "subtype": "success", "is_error": is_error, "result": text, "session_id": {sid!r},
          "duration_ms": 5, "duration_api_ms": 4, "num_turns": 1, "total_cost_usd": 0.001,
          "usage": {{"input_tokens": 7, "output_tokens": 3}}, **extra}})


def spawn(name, setsid=False, seconds=1000):
    # A child that outlives its turn; its pid is recorded (written whole, then renamed).
    child = subprocess.Popen(["sleep", str(seconds)], start_new_session=setsid)
    path = os.path.join(os.path.dirname(RECORD), name)
    with open(path + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(path + ".tmp", path)
    return child


def turns():
    # Each user line; control requests (initialize, interrupt, ...) are answered on the way.
    for line in sys.stdin:
        msg = json.loads(line)
        SEEN.append(msg)
        record("stdin", msg)
        if msg.get("type") == "control_request":
            out({{"type": "control_response", "response": {{"subtype": "success",
                  "request_id": msg["request_id"], "response": {{}}}}}})
        elif msg.get("type") == "user":
            yield msg


record("argv", sys.argv[1:])
record("env", dict(os.environ))
record("cwd", os.getcwd())
"""


def fake_cli(
    folder: Path,
    on_turn: str,
    *,
    setup: str = "",
    at_eof: str = 'record("eof", True)',
    name: str = "claude",
    python: str = sys.executable,
) -> str:
    """Write a fake CLI into ``folder``: ``setup`` runs once at start, ``on_turn`` for each user line
    (``msg``; ``SEEN`` holds every line read so far), ``at_eof`` once its stdin has ended (then it exits). Returns its path."""
    path = folder / name
    body = _PROTOCOL.format(record=str(folder / "record.jsonl"), sid=SID)
    body += textwrap.dedent(setup) + "\nfor msg in turns():\n" + textwrap.indent(textwrap.dedent(on_turn), "    ")
    body += "\n" + textwrap.dedent(at_eof) + "\n"
    path.write_text(f"#!{python}\n" + body)
    path.chmod(0o755)
    return str(path)


def records(folder: Path, kind: str) -> list[Any]:
    """What the fake in ``folder`` recorded of one kind (argv, env, cwd, stdin), in order."""
    path = folder / "record.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [entry["value"] for entry in entries if entry["kind"] == kind]


def child_pids(folder: Path) -> list[int]:
    """The pids of the children the fake in ``folder`` recorded with spawn()."""
    return [
        int(path.read_text())
        for path in sorted(folder.iterdir())
        if path.name.startswith("child-") and not path.name.endswith(".tmp")
    ]


# The environment fakes need: nothing of the server's is passed unless listed here.
BASE_ENV = {"PATH": os.environ["PATH"]}


# What the ``start`` fixture (tests/drivers/claude/conftest.py) gives: start a session on a fake.
Start = Callable[..., Awaitable[LiveSession]]

# Ends the turn at once: the fake's answer to every message.
ANSWER = 'init(); say("hi " + msg["message"]["content"]); result("answered")'
# A turn that stalls: the fake starts a child in its own group and one in a session of its own
# (as the real CLI's Bash tool does), says it started, and sleeps.
STALL = 'spawn("child-a"); spawn("child-b", setsid=True); init(); time.sleep(1000)'
IGNORE_TERM = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"


class Handler:
    """A TurnHandler that answers every prompt with ``answer`` and remembers what it was asked."""

    def __init__(self, answer: Permission | None = None, refuse: str | None = None) -> None:
        self.answer = answer or Permission(allow=True)
        self.refuse = refuse
        self.asked: list[tuple[str, Any]] = []

    async def permission(
        self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]], tool_use_id: str | None
    ) -> Permission:
        self.asked.append(("permission", (tool, tool_input, suggestions, tool_use_id)))
        return self.answer

    async def before_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> str | None:
        self.asked.append(("before", (tool, tool_input, tool_use_id)))
        return self.refuse

    async def after_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> None:
        self.asked.append(("after", (tool, tool_input, tool_use_id)))


async def turn(
    session: LiveSession, prompt: str = "hello", handler: Handler | None = None, *, sent: bool = False
) -> list[claude.Event]:
    """The turn's events; with ``sent``, also the one saying its message is on the CLI's stdin."""
    async with asyncio.timeout(15):
        events = [event async for event in session.turn(prompt, handler or Handler())]
    return events if sent else [event for event in events if not isinstance(event, claude.Sent)]
