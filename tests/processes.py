"""Reading process states from /proc, for tests that check nothing outlives a turn."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path


def _stat_fields(pid: int | str) -> list[bytes] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name in parentheses may itself hold spaces and parentheses.
    return raw[raw.rindex(b")") + 2 :].split()


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a killed process waiting to be reaped does not)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(name)
            if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                members.append(int(name))
    return members


def assert_all_gone(pids: list[int], pgid: int | None = None, within: float = 10.0) -> None:
    """Every pid has stopped running and nothing runs in the group any more.

    Killed orphans stay zombies until init reaps them, on its own schedule (about 2 s here), so
    this reads /proc states instead of waiting for os.killpg(pgid, 0) to fail.
    """
    deadline = time.monotonic() + within
    while True:
        alive = [pid for pid in pids if running(pid)]
        members = group_members(pgid) if pgid is not None else []
        if not alive and not members:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {alive} and in group {pgid}: {members}")
        time.sleep(0.02)


def stop(process: subprocess.Popen[bytes], *, within: float = 10) -> None:
    """Ask ``process`` to end (SIGTERM), and kill it if it has not within ``within`` seconds."""
    process.terminate()
    try:
        process.wait(within)
    except subprocess.TimeoutExpired:
        process.kill()


def spawn_named(name: str) -> subprocess.Popen[bytes]:
    """A long sleep in a session of its own whose command line starts with ``name``, returned once
    it shows that name. Until its exec is done the process reads as ``bash`` (and for a moment as
    an empty command line), which no process recorded by a real turn ever does."""
    process = subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 600"], start_new_session=True)
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(name.encode()):
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{name} did not start")
        time.sleep(0.01)
    return process


def unique_sleep() -> list[str]:
    """A long ``sleep`` command whose argument no other test, xdist worker or test run on this
    machine uses: a test that looks in /proc for what it left behind finds only its own."""
    return ["sleep", f"321.{secrets.randbelow(10**9):09d}"]
