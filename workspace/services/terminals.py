"""Terminals: an interactive shell in a workspace's folder, in the sandbox its agent gets.

The shell runs in bubblewrap with the agent's folders (the working directory and the chat's CLI
config folder, writable; a shared project's ``.git`` and ``.worktrees`` read-only), as its user (uid
1000 in a user namespace of its own), in namespaces of its own and with the environment the agent's
CLI gets (no server variable, credentials as placeholders), but no network at all: a person types
there, and the egress proxy is the agents'. bubblewrap starts the process in a session of its own,
without a controlling terminal (so that nothing inside can push input into a terminal outside);
``script`` inside makes a terminal of the sandbox's own for the shell, so Ctrl-C, job control and
full-screen programs work.

A terminal is kept per member and folder while its shell lives: a reloaded page attaches to it
again and gets its recent output (the scrollback). It ends when its shell exits, after
CLAUDE_TERMINAL_IDLE_SECONDS without use (no keystroke, and no output to an open page), and with
the server (bubblewrap dies with its parent; a normal exit ends every terminal's process group).
A member may keep CLAUDE_MAX_TERMINALS_PER_MEMBER open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from chat.services import agents
from drivers import claude
from drivers.claude import proctree
from drivers.claude.sandbox import launch

from ..selectors import Place

SCROLLBACK_BYTES = 256 * 1024
READ_BYTES = 64 * 1024
# What runs inside: script gives the shell a terminal of the sandbox's own (see the module's text).
SHELL = ["/usr/bin/script", "-qfec", "/bin/bash --norc -i", "/dev/null"]
# The folder is the shell's home, so that its prompt names folders within it ("~/src"), never by the
# server's paths (as pages do); its history stays in the sandbox's private /tmp, out of the folder.
PROMPT = r"\u@sandbox:\w\$ "
MAX_SIZE = 1000
PENDING_BYTES = 1024 * 1024
# Chunks of output a page may lag behind before the shell's output is held (``yes`` would otherwise
# fill the server's memory faster than a socket sends it); it is read again once the page caught up.
BEHIND_CHUNKS = 32


class TerminalRefused(Exception):
    """No terminal can be opened; the text says why and what to do."""


@dataclass(eq=False)
class Terminal:
    key: tuple[int, str]
    process: subprocess.Popen[bytes]
    master: int
    scrollback: bytearray = field(default_factory=bytearray)
    listeners: set[asyncio.Queue[bytes | None]] = field(default_factory=set)
    # A keystroke, or output while a page watches: a build printing for an hour is not idle.
    last_used: float = field(default_factory=time.monotonic)
    ended: bool = False
    watchdog: asyncio.Task[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    pending: bytearray = field(default_factory=bytearray)
    waiting: bool = False  # for the terminal to take what is pending
    held: bool = False  # its output is not read until its pages caught up

    def write(self, data: bytes) -> None:
        """Send keystrokes to the shell. What its terminal cannot take now (a long paste while a
        program reads nothing) waits here, up to PENDING_BYTES, and goes when it can: the server's
        event loop never waits for a shell."""
        if self.ended:
            return
        self.last_used = time.monotonic()
        if len(self.pending) + len(data) > PENDING_BYTES:
            return  # the shell has not read the last megabyte: more typing is dropped
        self.pending += data
        self._flush()

    def _flush(self) -> None:
        while self.pending and not self.ended:
            try:
                written = os.write(self.master, self.pending)
            except BlockingIOError:
                if self.loop is not None and not self.waiting:
                    self.waiting = True
                    self.loop.add_writer(self.master, self._writable)
                return
            except OSError:
                self.pending.clear()
                return
            del self.pending[:written]

    def _writable(self) -> None:
        if self.loop is not None:
            self.loop.remove_writer(self.master)
        self.waiting = False
        self._flush()

    def resize(self, *, cols: int, rows: int) -> None:
        if self.ended:
            return
        cols, rows = max(1, min(cols, MAX_SIZE)), max(1, min(rows, MAX_SIZE))
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        # script, without a controlling terminal outside, learns the new size from a SIGWINCH.
        for proc in proctree.descendants(self.process.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "script":
                    os.kill(proc.pid, signal.SIGWINCH)


# The terminals of this server process, by (member, folder). They live here as the engine's warm
# CLI processes do (one Daphne process serves everyone; see the README): a shell is a process of
# this machine, found again by the page that reconnects to this server.
_open: dict[tuple[int, str], Terminal] = {}


def open_count(member_id: int) -> int:
    return sum(1 for key, terminal in _open.items() if key[0] == member_id and not terminal.ended)


def _environment(place: Place) -> dict[str, str]:
    assert place.session is not None
    env = agents.environment(session=place.session)
    return {
        **env,
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "SHELL": "/bin/bash",
        "HOME": str(place.root),
        "HISTFILE": "/tmp/.bash_history",
        "PS1": PROMPT,
    }


def sandbox_for(place: Place) -> claude.Sandbox:
    """The sandbox of the place's agent (see :func:`chat.services.agents.sandbox`), without its
    network."""
    if not agents.sandboxed():
        raise TerminalRefused(
            "Terminals need the sandbox, and CLAUDE_SANDBOX is off on this server: an admin installs bubblewrap "
            "and removes CLAUDE_SANDBOX=off."
        )
    session = place.session
    if session is None:
        raise TerminalRefused("This task has not started yet: open its terminal once it has run.")
    try:
        bwrap = claude.find_bwrap(settings.CLAUDE_BWRAP)
    except claude.SandboxMissing:
        raise TerminalRefused(
            "bubblewrap is not installed: an admin installs it (apt-get install bubblewrap)."
        ) from None
    Path(session.config_dir).mkdir(parents=True, exist_ok=True)
    shared = settings.CLAUDE_PROJECTS.get(place.project) if place.project and place.kind == "chat" else None
    return claude.Sandbox(
        bwrap=bwrap,
        writable=[place.root, Path(session.config_dir)],
        readonly=[],
        state_dir=Path(settings.DATA_DIR) / "sandbox",
        home=Path(session.config_dir),  # as the agent's (its /etc/passwd); the shell's $HOME is the folder
        bridge=None,
        protected=agents.protect_shared(Path(shared)) if shared is not None else [],
    )


def attach(
    *, place: Place, member_id: int, cols: int = 80, rows: int = 24
) -> tuple[Terminal, asyncio.Queue[bytes | None]]:
    """The member's terminal in ``place`` (started if none lives) and a queue of its output, the
    scrollback first; ``None`` in the queue: it ended."""
    key = (member_id, place.key)
    terminal = _open.get(key)
    if terminal is None or terminal.ended:
        if open_count(member_id) >= settings.CLAUDE_MAX_TERMINALS_PER_MEMBER:
            raise TerminalRefused(
                f"You have {open_count(member_id)} terminals open, the most a member may "
                f"(CLAUDE_MAX_TERMINALS_PER_MEMBER = {settings.CLAUDE_MAX_TERMINALS_PER_MEMBER}): type exit in one "
                "you no longer need, then reload this page."
            )
        terminal = _start(place, key, cols=cols, rows=rows)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    if terminal.scrollback:
        queue.put_nowait(bytes(terminal.scrollback))
    terminal.listeners.add(queue)
    return terminal, queue


def detach(terminal: Terminal, queue: asyncio.Queue[bytes | None]) -> None:
    terminal.listeners.discard(queue)
    caught_up(terminal)


def _start(place: Place, key: tuple[int, str], *, cols: int, rows: int) -> Terminal:
    sandbox = sandbox_for(place)
    if not place.root.is_dir():
        raise TerminalRefused("This folder does not exist yet: it is made when its first turn runs.")
    started = launch(sandbox, SHELL, cwd=place.root, env=_environment(place))
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        process = subprocess.Popen(
            started.argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={},
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        started.discard()
        os.close(master)
        raise
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    proctree.track(process.pid)
    loop = asyncio.get_running_loop()
    terminal = Terminal(key=key, process=process, master=master, loop=loop)
    _open[key] = terminal
    loop.add_reader(master, _readable, terminal)
    terminal.watchdog = loop.create_task(_watch(terminal), name=f"terminal {key}")
    return terminal


def _readable(terminal: Terminal) -> None:
    try:
        data = os.read(terminal.master, READ_BYTES)
    except BlockingIOError:
        return
    except OSError:
        data = b""  # EIO: the shell and everything on its terminal are gone
    if not data:
        end(terminal)
        return
    terminal.scrollback += data
    if len(terminal.scrollback) > SCROLLBACK_BYTES:
        del terminal.scrollback[: len(terminal.scrollback) - SCROLLBACK_BYTES]
    if terminal.listeners:
        terminal.last_used = time.monotonic()
    for queue in terminal.listeners:
        queue.put_nowait(data)
    if any(queue.qsize() > BEHIND_CHUNKS for queue in terminal.listeners) and terminal.loop is not None:
        terminal.loop.remove_reader(terminal.master)
        terminal.held = True


def caught_up(terminal: Terminal) -> None:
    """A page took what was queued for it (or left): the shell's output is read again if it was held."""
    if not terminal.held or terminal.ended or terminal.loop is None:
        return
    if all(queue.qsize() <= BEHIND_CHUNKS // 2 for queue in terminal.listeners):
        terminal.held = False
        terminal.loop.add_reader(terminal.master, _readable, terminal)


async def _watch(terminal: Terminal) -> None:
    """End the terminal after CLAUDE_TERMINAL_IDLE_SECONDS without a keystroke (nor output to a page)."""
    idle = settings.CLAUDE_TERMINAL_IDLE_SECONDS
    while not terminal.ended:
        left = terminal.last_used + idle - time.monotonic()
        if left <= 0:
            notice = f"\r\n[The terminal ended after {idle:g} seconds without use.]\r\n".encode()
            for queue in terminal.listeners:
                queue.put_nowait(notice)
            end(terminal)
            return
        await asyncio.sleep(min(left, 30.0))


def end(terminal: Terminal) -> None:
    """End the terminal's shell with everything it started, and tell its pages."""
    if terminal.ended:
        return
    terminal.ended = True
    if terminal.loop is not None and not terminal.loop.is_closed():
        terminal.loop.remove_reader(terminal.master)
        terminal.loop.remove_writer(terminal.master)
    proctree.kill_group(terminal.process.pid)
    proctree.untrack(terminal.process.pid)
    with contextlib.suppress(OSError):
        os.close(terminal.master)
    with contextlib.suppress(subprocess.TimeoutExpired):
        terminal.process.wait(timeout=2)
    running = asyncio.current_task() if _loop_running() else None
    if terminal.watchdog is not None and terminal.watchdog is not running:
        terminal.watchdog.cancel()
    if _open.get(terminal.key) is terminal:
        del _open[terminal.key]
    for queue in terminal.listeners:
        queue.put_nowait(None)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def end_all() -> None:
    """End every terminal (the server stopping, a test ending)."""
    for terminal in list(_open.values()):
        end(terminal)
