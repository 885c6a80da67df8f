"""A stand-in for the Claude Code CLI's process that plays scripted turns in this process, in milliseconds.

The node runtime starts processes through a factory (``project.runtime.build(factory=...)``);
:class:`FakeCli` is one. It is for tests of what the real CLI adds nothing to: orderings, limits,
fairness, statuses, API statuses. Every feature keeps a test with the real CLI as well.

A fake session speaks the :class:`runtime.Process` interface as :class:`drivers.claude.LiveSession`
does and answers as the Messages-API stand-in (``devtools/stub_api.py``) makes the real CLI answer:

- ``my name is X`` / ``what is my name``: the memory is a transcript file where the CLI keeps its
  own (``CLAUDE_CONFIG_DIR/projects/<cwd>/<id>.jsonl``): a new process of the session resumes it,
  ``--session-id`` with a transcript fails "already in use", ``--resume`` without one "No
  conversation found", as the CLI does;
- ``write PATH: CONTENT``: a Write tool call, through the turn handler as the CLI calls it: the
  PreToolUse hook (which may refuse it), the permission prompt unless the mode or the allowed tools
  let it through, the file written in the working directory, the PostToolUse hook;
- ``slow SECONDS``: ``Slow answer: word1 word2 ...`` streamed over that many seconds, until an
  interrupt; ``stuck SECONDS``: the same, deaf to interrupts (only closing ends it);
- ``crash CODE``: the process dies mid-turn with that exit code and a line on stderr;
- ``echo: TEXT``, ``tokens N``, ``which model``; anything else, a short answer.

Each turn reports usage and the session's running cost (0.001 a turn), as the CLI does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from drivers import claude
from drivers.claude import (
    Exit,
    Init,
    LiveSpec,
    Prompt,
    Result,
    SessionFailed,
    StreamUsage,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
    TurnHandler,
)

MODEL = "claude-fake"
COST_A_TURN = 0.001
CLOSE_SECONDS = 0.02
_NAME = re.compile(r"\bmy name is (\w+)", re.IGNORECASE)
_ids = itertools.count(1)


def _text_of(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt.strip()
    return "\n".join(str(block.get("text", "")) for block in prompt if block.get("type") == "text").strip()


class FakeCli:
    """The process factory: starts :class:`FakeSession` s and counts them."""

    def __init__(self) -> None:
        self.started: list[FakeSession] = []
        self.peak = 0  # the most processes alive at once
        # A start that fails as the CLI would (set by a test): the Exit it fails with, once.
        self.fail_next_start: Exit | None = None

    @property
    def alive(self) -> list[FakeSession]:
        return [session for session in self.started if session.alive]

    async def __call__(self, spec: LiveSpec) -> FakeSession:
        await asyncio.sleep(0)  # a start takes a step of the loop, as a real one takes several
        failure, self.fail_next_start = self.fail_next_start, None
        if failure is not None:
            raise SessionFailed(failure)
        if not Path(spec.cwd).is_dir():
            raise claude.WorkdirMissing(spec.cwd)
        session = FakeSession(spec, self)
        transcript = session.transcript.exists()
        if spec.resume and not transcript:
            raise SessionFailed(Exit(1, f"No conversation found with session ID: {spec.session_id}"))
        if not spec.resume and transcript:
            raise SessionFailed(Exit(1, f"Error: Session ID {spec.session_id} is already in use."))
        self.started.append(session)
        self.peak = max(self.peak, len(self.alive))
        return session


class FakeSession:
    """One stand-in CLI process of one session (a :class:`runtime.Process`)."""

    def __init__(self, spec: LiveSpec, cli: FakeCli) -> None:
        self.spec = spec
        self.cli = cli
        self.pid: int | None = None  # no process of the system's
        self.model = spec.model
        self.mode = spec.mode
        self.turns = 0
        self.closed = False
        self.prompts: list[str] = []
        self.changes: list[tuple[str, str | None]] = []  # set_model / set_permission_mode calls
        self._interrupted = asyncio.Event()
        self._closing = asyncio.Event()
        self._dead = False

    @property
    def transcript(self) -> Path:
        config = self.spec.env.get("CLAUDE_CONFIG_DIR", "")
        return claude.transcript_path(config, self.spec.cwd, self.spec.session_id)

    @property
    def alive(self) -> bool:
        return not self.closed and not self._dead

    async def interrupt(self) -> bool:
        if not self.alive:
            return False
        self._interrupted.set()
        return True

    async def set_model(self, model: str | None) -> None:
        self.changes.append(("model", model))
        self.model = model

    async def set_permission_mode(self, mode: str) -> None:
        self.changes.append(("mode", mode))
        self.mode = mode

    async def close(self) -> None:
        """Ends a moment later, as a CLI does once its stdin is closed (it writes its transcript)."""
        if self.closed:
            return
        self._closing.set()
        await asyncio.sleep(CLOSE_SECONDS)
        self.closed = True

    # -- turns ---------------------------------------------------------------------------
    async def turn(self, prompt: Prompt, handler: TurnHandler) -> AsyncIterator[claude.Event]:
        if not self.alive:
            raise SessionFailed(Exit(1, "the Claude Code process is not running"))
        said = _text_of(prompt)
        self.prompts.append(said)
        self.turns += 1
        self._interrupted.clear()
        yield Init(session_id=self.spec.session_id, cwd=self.spec.cwd, model=self.model or MODEL)
        lowered = said.lower()
        answer: list[str] = []
        output_tokens = 5
        crash = re.match(r"crash\s+(\d+)", lowered)
        if crash:
            self._dead = True
            yield Exit(returncode=int(crash.group(1)), stderr="fatal: the fake CLI crashed")
            return
        if lowered.startswith(("slow", "stuck")):
            stopped = False
            yield StreamUsage(input_tokens=10, output_tokens=1, started=True)
            async for event in self._slow(lowered, deaf=lowered.startswith("stuck")):
                if event is None:
                    stopped = True
                    break
                answer.append(event.text)
                yield event
                yield StreamUsage(input_tokens=0, output_tokens=len(answer), started=False)
            if self.closed:
                yield Exit(returncode=-9, stderr="the Claude Code process ended")
                return
            text = "".join(answer)
            yield Text(text=text)
            yield self._result(said, text, error=stopped, output_tokens=output_tokens)
            return
        if lowered.startswith("write ") and ":" in said:
            path, content = said[len("write ") :].split(":", 1)
            async for event in self._write(handler, path.strip(), content.strip() + "\n"):
                yield event
                if isinstance(event, ToolResult):
                    answer.append(f"Done. The tool said: {event.content[:200]}")
        else:
            text, output_tokens = self._answer(said, lowered)
            answer.append(text)
        text = "".join(answer)
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            if piece:
                yield TextDelta(text=piece)
                await asyncio.sleep(0)
        yield Text(text=text)
        yield self._result(said, text, output_tokens=output_tokens)

    def _answer(self, said: str, lowered: str) -> tuple[str, int]:
        if lowered.startswith("echo:"):
            return said[len("echo:") :].strip(), 5
        if lowered.startswith("which model"):
            return f"This answer comes from the model {self.model or MODEL}.", 5
        tokens = re.match(r"tokens\s+(\d+)", lowered)
        if tokens:
            return f"Reporting {tokens.group(1)} output tokens.", int(tokens.group(1))
        if "what is my name" in lowered:
            for earlier in reversed(self._said_before()):
                found = _NAME.search(earlier)
                if found:
                    return f"Your name is {found.group(1)}.", 5
            return "I don't know your name yet.", 5
        found = _NAME.search(said)
        if found:
            return f"Nice to meet you, {found.group(1)}.", 5
        return "This is the fake CLI of the tests. You said: " + said[:200], 5

    async def _slow(self, lowered: str, *, deaf: bool) -> AsyncIterator[TextDelta | None]:
        """Words over the seconds asked; None once interrupted (unless ``deaf``), nothing once closed."""
        match = re.match(r"(?:slow|stuck)\s+([\d.]+)", lowered)
        seconds = float(match.group(1)) if match else 3.0
        count = max(2, int(seconds * 10))
        yield TextDelta(text="Slow answer:")
        for i in range(1, count + 1):
            if self.closed:
                return
            if self._interrupted.is_set() and not deaf:
                yield None
                return
            yield TextDelta(text=f" word{i}")
            try:
                async with asyncio.timeout(seconds / count):
                    await (self._closing.wait() if deaf else _first(self._interrupted, self._closing))
            except TimeoutError:
                pass
        yield TextDelta(text=" (end of slow answer)")

    async def _write(self, handler: TurnHandler, path: str, content: str) -> AsyncIterator[claude.Event]:
        tool_id = f"toolu_fake_{next(_ids)}"
        target = Path(path) if Path(path).is_absolute() else Path(self.spec.cwd) / path
        tool_input: dict[str, Any] = {"file_path": str(target), "content": content}
        yield ToolUse(id=tool_id, name="Write", input=tool_input)
        # An interrupt while the CLI waits for a callback cancels the callback, as the CLI's
        # control_cancel_request does, and ends the turn.
        done, refused = await self._unless_interrupted(handler.before_file_tool("Write", tool_input, tool_id))
        if not done or refused is not None:
            reason = refused if done else "[Request interrupted by user]"
            yield ToolResult(tool_use_id=tool_id, content=f"PreToolUse:Write hook error: {reason}", is_error=True)
            return
        asks = self.mode not in ("acceptEdits", "bypassPermissions") and "Write" not in self.spec.allowed_tools
        if asks:
            done, answer = await self._unless_interrupted(handler.permission("Write", tool_input, [], tool_id))
            if not done or not answer.allow:
                said = answer.message if done else "[Request interrupted by user]"
                yield ToolResult(tool_use_id=tool_id, content=said or "denied", is_error=True)
                return
        target.write_text(content)
        await handler.after_file_tool("Write", tool_input, tool_id)
        yield ToolResult(tool_use_id=tool_id, content=f"File created successfully at: {target}", is_error=False)

    async def _unless_interrupted[T](self, call: Coroutine[Any, Any, T]) -> tuple[bool, T]:
        """(True, what ``call`` answered), or (False, None) if the turn was interrupted first."""
        task = asyncio.ensure_future(call)
        interrupted = asyncio.ensure_future(self._interrupted.wait())
        try:
            await asyncio.wait({task, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False, None  # type: ignore[return-value]

    def _said_before(self) -> list[str]:
        if not self.transcript.exists():
            return []
        return [json.loads(line)["said"] for line in self.transcript.read_text().splitlines() if line]

    def _result(self, said: str, text: str, *, error: bool = False, output_tokens: int = 5) -> Result:
        """The turn's result; the turn goes into the transcript (the session's memory) first. An
        interrupted turn's reports no tokens, as the CLI's does: they streamed."""
        earlier = len(self._said_before())
        self.transcript.parent.mkdir(parents=True, exist_ok=True)
        with self.transcript.open("a") as out:
            out.write(json.dumps({"said": said, "answer": text}) + "\n")
        return Result(
            is_error=error,
            subtype="error_during_execution" if error else "success",
            text=text,
            session_id=self.spec.session_id,
            duration_ms=5,
            total_cost_usd=round(COST_A_TURN * (earlier + 1), 6),
            input_tokens=0 if error else 10,
            output_tokens=0 if error else output_tokens,
        )


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
