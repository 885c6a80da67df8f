"""Ending a CLI process and everything it started.

The CLI runs in its own process group, but its Bash tool starts commands in sessions of their
own (``setsid``), so a group kill alone misses them: the tree is found through ``/proc``.
No Django imports.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------
# Process handling

EXIT_POLL_SECONDS = 0.05
# How long ending what a turn left behind may take before the turn goes on without waiting.
SWEEP_SECONDS = 2.0

_live_groups: set[int] = set()


@dataclass(frozen=True)
class _Proc:
    pid: int
    pgid: int
    started: int  # clock ticks after boot: tells a process from a later one with the same pid


def _stat(pid: int) -> tuple[int, int, int, bool] | None:
    """(ppid, pgid, starttime, running) of a process from /proc, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
        # The command name in parentheses may itself hold spaces and parentheses.
        fields = raw[raw.rindex(b")") + 2 :].split()
        return int(fields[1]), int(fields[2]), int(fields[19]), fields[0] not in (b"Z", b"X")
    except (OSError, ValueError, IndexError):
        return None


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a killed child not yet reaped by its parent does not)."""
    stat = _stat(pid)
    return stat is not None and stat[3]


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (None if it does not run): with the pid,
    it tells a process from a later one that was given the same pid."""
    stat = _stat(pid)
    return stat[2] if stat is not None and stat[3] else None


def is_process_of(pid: int, *, started: int | None, command: bytes) -> bool:
    """Whether ``pid`` is still the process recorded earlier: the same start time if one was
    recorded, and ``command`` in its command line (both read from /proc)."""
    now = process_start_time(pid)
    if now is None or (started is not None and now != started):
        return False
    try:
        return command in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _children_files() -> bool:
    """Whether the kernel lists each task's children (``/proc/<pid>/task/<tid>/children``, Linux 3.5+
    with CONFIG_PROC_CHILDREN): walking a tree through them reads a few files, not all of /proc."""
    return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


_CHILDREN_FILES = _children_files()


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``: each of its threads lists the children it started."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # it has gone
    found: list[int] = []
    for tid in tasks:
        try:
            found.extend(int(child) for child in Path(f"/proc/{pid}/task/{tid}/children").read_bytes().split())
        except (OSError, ValueError):
            continue  # the thread has ended
    return found


def _descendants(root: int) -> list[_Proc]:
    """Every living process below ``root``, found through /proc (empty where there is no /proc).

    Before every turn and after it (what the turn started is ended): the tree is walked from its
    root through the children files where the kernel has them; scanning every process of the
    machine cost about 14 ms a time on a loaded server, on the turn's way to the CLI."""
    if _CHILDREN_FILES:
        return _walked(root)
    return _scanned(root)


def _walked(root: int) -> list[_Proc]:
    found: list[_Proc] = []
    todo = [root]
    while todo:
        parent = todo.pop()
        for pid in _children(parent):
            stat = _stat(pid)
            # Only a child still of this parent (not a pid reused since the list was read).
            if stat is not None and stat[3] and stat[0] == parent:
                found.append(_Proc(pid, stat[1], stat[2]))
                todo.append(pid)
    return found


def _scanned(root: int) -> list[_Proc]:
    children: dict[int, list[_Proc]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        stat = _stat(int(name))
        if stat is not None and stat[3]:
            children.setdefault(stat[0], []).append(_Proc(int(name), stat[1], stat[2]))
    found: list[_Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def _signal_procs(procs: Sequence[_Proc], sig: int) -> None:
    # Check each one is still the process seen before: its pid may have been reused since.
    same = [proc for proc in procs if (stat := _stat(proc.pid)) is not None and stat[2] == proc.started]
    for proc in same:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if proc.pgid == proc.pid:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)


def _tree_of_leader(pgid: int) -> list[_Proc]:
    """The processes started by the leader of group ``pgid``, if that leader is alive."""
    stat = _stat(pgid)
    # Only a group leader with this id: a pid reused by an unrelated process must not be swept.
    if stat is None or not stat[3] or stat[1] != pgid:
        return []
    return _descendants(pgid)


def descendants(pid: int) -> list[_Proc]:
    """The processes below ``pid`` now (to be ended with :func:`end_tree` once it has gone)."""
    return _descendants(pid)


def snapshot(pid: int | None) -> frozenset[tuple[int, int]]:
    """The processes below ``pid`` now, each as (pid, start time): what :func:`end_since` spares."""
    return frozenset((proc.pid, proc.started) for proc in _descendants(pid)) if pid is not None else frozenset()


async def end_since(pid: int, before: frozenset[tuple[int, int]], *, within: float = SWEEP_SECONDS) -> int:
    """End every process below ``pid`` that was not there in ``before`` (a :func:`snapshot`) and
    wait until it has exited; returns how many were ended.

    In a sandbox every process the agent started stays below ``pid`` (its PID namespace's init
    adopts what a double fork or ``setsid`` orphans), so this ends all a turn started, however
    detached, and spares the CLI. Processes are signalled one by one, never by group: a group may
    hold one that must live. What was forked meanwhile is found by looking again, until nothing new
    is left (or ``within`` seconds have passed: a process that cannot be ended must not hold the turn).
    """
    ended: set[tuple[int, int]] = set()
    deadline = asyncio.get_running_loop().time() + within
    while True:
        new = [proc for proc in _descendants(pid) if (proc.pid, proc.started) not in before]
        if not new:
            return len(ended)
        for proc in new:
            if (stat := _stat(proc.pid)) is not None and stat[2] == proc.started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGKILL)
            ended.add((proc.pid, proc.started))
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return len(ended)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await asyncio.gather(*(exited(proc.pid) for proc in new))


def end_tree(pid: int, tree: Sequence[_Proc], sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` and the processes of ``tree`` that are still the ones seen before (a process
    that leads no group of its own: its group is the server's, which must not be signalled)."""
    stat = _stat(pid)
    procs = [_Proc(pid, stat[1], stat[2])] if stat is not None and stat[3] else []
    _signal_procs([*procs, *tree, *_descendants(pid)], sig)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group, and the processes its leader started in groups or sessions
    of their own (the CLI runs Bash tools with setsid); False if the group is already gone."""
    tree = _tree_of_leader(pgid)
    try:
        os.killpg(pgid, sig)
        gone = False
    except (ProcessLookupError, PermissionError):
        gone = True
    _signal_procs(tree, sig)
    return not gone


@atexit.register
def _kill_all_groups() -> None:
    # The CLI runs in its own session, so it would not die with this process: end it here.
    for pgid in list(_live_groups):
        # A group of its own (a one-shot CLI run), or a process in the server's group (a live session).
        if not kill_group(pgid):
            end_tree(pgid, [])


def track(pgid: int) -> None:
    """Remember a running CLI group, so that it is ended if this process exits first."""
    _live_groups.add(pgid)


def untrack(pgid: int) -> None:
    _live_groups.discard(pgid)


def live_groups() -> frozenset[int]:
    return frozenset(_live_groups)


async def exited(pid: int) -> None:
    """Return once ``pid`` has exited, whoever reaps it.

    Not the asyncio process's wait(): that also waits for its stdout and stderr to close, which
    never happens while a process it left behind still holds them. A pidfd tells at once where
    the kernel and the loop have them; else /proc is polled.
    """
    started = process_start_time(pid)
    if started is None:
        return
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone since, or a kernel without pidfds
        fd = None
    if fd is not None:
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        try:
            loop.add_reader(fd, readable)
        except NotImplementedError:
            os.close(fd)
        else:
            try:
                await ready
            finally:
                loop.remove_reader(fd)
                os.close(fd)
            return
    while process_start_time(pid) == started:  # noqa: ASYNC110
        await asyncio.sleep(EXIT_POLL_SECONDS)


async def kill_leftovers(pid: int) -> None:
    """Once ``pid`` (the leader of a group) exits, end what it left in its group: such a process may
    hold its stdout open, and whoever reads that would wait for ever."""
    await exited(pid)
    kill_group(pid, signal.SIGKILL)
