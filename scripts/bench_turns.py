#!/usr/bin/env python
"""Benchmark: turns on warm Claude Code processes against the raw CLI, cold and warm.

In one run, side by side, with the real pinned CLI against the offline Messages-API stand-in:

- follow-up turn, from sending the message to the first frame carrying the answer's text: the app
  (a websocket send through ``project.asgi.application``, the runtime in this process, agents in
  their bubblewrap sandbox) vs the raw CLI cold (``--print --resume``) vs the raw CLI warm (one
  process fed ``--input-format stream-json``);
- a new chat's first turn: the app vs the raw CLI (``--print --session-id``);
- throughput and CPU seconds per turn: 20 chats each sending 5 follow-ups, warm (the default)
  vs cold (``CLAUDE_MAX_WARM=0``: every turn starts a process that resumes the transcript);
- memory of N warm sessions (RSS and PSS of every process of the server's tree).

Prints figures, never asserts; compare the ratios of one run. Run with
`.venv/bin/python scripts/bench_turns.py` (about two minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.memory import rss_and_pss_kb  # noqa: E402
from devtools.stub_api import StubServer  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="chat-bench-turns-"))
STUB = StubServer().start()
CONFIG = TMP / "claude"
HOME = TMP / "home"
HOME.mkdir()
(TMP / "staticfiles").mkdir()
os.environ.update(
    {
        "APP_DATA_DIR": str(TMP),
        "DATABASE_URL": f"sqlite:///{TMP}/bench.sqlite3",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_ALLOWED_HOSTS": "localhost,testserver",
        "CLAUDE_WORKDIR": str(TMP / "work"),
        "CLAUDE_CONFIG_DIR": str(CONFIG),
        "ANTHROPIC_BASE_URL": STUB.url,
        "ANTHROPIC_API_KEY": "bench-key",
        "HOME": str(HOME),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_MAX_CONCURRENT": "20",
        "CLAUDE_MAX_WARM": "20",
        "CLAUDE_MAX_QUEUED_PER_MEMBER": "50",
    }
)

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from chat.models import Session, Turn  # noqa: E402
from chat.services import chats, turns  # noqa: E402
from drivers.claude import proctree  # noqa: E402
from project import runtime as composition  # noqa: E402
from project.asgi import application_for  # noqa: E402
from runtime import Engine  # noqa: E402

CLI = str(settings.CLAUDE_CLI)
REPEATS = 9
CHATS, FOLLOW_UPS = 20, 5
# The first words of the stand-in's answers: the first streamed delta holds them.
ANSWER = '"Your '
GREETING = '"Nice '
APP_ANSWER, APP_GREETING = "Your", "Nice"


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.0f} ms"


# -- the raw CLI -------------------------------------------------------------------------------


def raw_env(config: Path) -> dict[str, str]:
    return {**os.environ, "CLAUDE_CONFIG_DIR": str(config)}


def raw_print(args: list[str], cwd: Path, config: Path, needle: str) -> float:
    """Seconds from starting ``claude --print`` to the first line holding ``needle``."""
    start = time.perf_counter()
    with subprocess.Popen(
        [CLI, "--print", "--output-format", "stream-json", "--verbose", "--include-partial-messages", *args],
        cwd=cwd,
        env=raw_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        first = None
        for line in proc.stdout:
            if first is None and needle in line:
                first = time.perf_counter() - start
        proc.wait()
    if first is None:
        raise SystemExit(f"the raw CLI never answered {needle!r}")
    return first


def raw_cold(folder: Path) -> tuple[list[float], list[float]]:
    """(first turns, cold follow-ups): each a new process."""
    config, cwd = folder / "config", folder / "work"
    cwd.mkdir(parents=True)
    firsts, follow_ups = [], []
    for _ in range(REPEATS):
        sid = str(uuid.uuid4())
        firsts.append(raw_print(["--session-id", sid, "My name is Ada"], cwd, config, GREETING))
        follow_ups.append(raw_print(["--resume", sid, "What is my name?"], cwd, config, ANSWER))
    return firsts, follow_ups


class RawWarm:
    """One raw CLI process fed stream-json: follow-ups after a first turn that loaded it."""

    def __init__(self, folder: Path) -> None:
        config, cwd = folder / "config", folder / "work"
        cwd.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [
                CLI,
                "--print",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--session-id",
                str(uuid.uuid4()),
            ],
            cwd=cwd,
            env=raw_env(config),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.turn("My name is Ada", GREETING)

    def turn(self, text: str, needle: str) -> float:
        """Seconds from writing the message to the first line holding ``needle``; reads to the result."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        start = time.perf_counter()
        self.proc.stdin.write(json.dumps({"type": "user", "message": {"role": "user", "content": text}}) + "\n")
        self.proc.stdin.flush()
        first = None
        for line in self.proc.stdout:
            if first is None and needle in line:
                first = time.perf_counter() - start
            if '"type":"result"' in line:
                break
        assert first is not None, f"the warm CLI never answered {needle!r}"
        return first

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# -- the app -----------------------------------------------------------------------------------


class Tab:
    """A logged-in browser tab of one chat: its websocket."""

    def __init__(self, engine: Engine, cookie: str, session: Session) -> None:
        self.session = session
        self.engine = engine
        self.socket = WebsocketCommunicator(
            application_for(engine),
            f"/ws/chat/{session.id}/",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())],
        )

    async def open(self) -> None:
        connected, _ = await self.socket.connect()
        assert connected
        await self.until('id="turns"')

    async def until(self, needle: str) -> None:
        seen = ""
        while needle not in seen:
            seen = await self.socket.receive_from(timeout=60)

    async def turn(self, text: str, needle: str) -> float:
        """Seconds from the send to the first frame holding ``needle``; then waits for the turn's end."""
        start = time.perf_counter()
        await self.socket.send_to(text_data=json.dumps({"message": text}))
        await self.until(needle)
        first = time.perf_counter() - start
        await self.engine.idle()
        return first

    async def drain(self) -> None:
        """Read what the last turn still sends, so that the next one is timed on its own frames."""
        while not await self.socket.receive_nothing(timeout=0.3):
            await self.socket.receive_from()

    async def close(self) -> None:
        await self.socket.disconnect()


@sync_to_async
def login_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())


@sync_to_async
def new_chat(user) -> Session:
    return chats.create_session(owner=user)


async def app_latency(engine: Engine, user) -> tuple[list[float], list[float], list[float]]:
    """(the app's first turns, the app's follow-ups, the raw warm CLI's follow-ups), taken in
    turns so that the machine's load weighs on both alike."""
    firsts, follow_ups, raw = [], [], []
    cookie = await login_cookie(user)
    warm = RawWarm(TMP / "raw-warm")
    for _ in range(REPEATS):
        tab = Tab(engine, cookie, await new_chat(user))
        await tab.open()
        firsts.append(await tab.turn("My name is Ada", APP_GREETING))
        await tab.drain()
        follow_ups.append(await tab.turn("What is my name?", APP_ANSWER))
        await tab.close()
        raw.append(warm.turn("What is my name?", ANSWER))
    warm.close()
    return firsts, follow_ups, raw


class CpuMeter:
    """CPU seconds of this process and of every process under it, read from /proc every 20 ms
    (the kernel's own counts of waited-for children miss processes killed with their sandbox)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], int] = {}  # (pid, start time) -> CPU ticks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            for proc in proctree.descendants(os.getpid()):
                try:
                    fields = Path(f"/proc/{proc.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                ticks = int(fields[11]) + int(fields[12])  # utime, stime
                key = (proc.pid, int(fields[19]))
                self.seen[key] = max(self.seen.get(key, 0), ticks)

    def __enter__(self) -> CpuMeter:
        self._own = resource.getrusage(resource.RUSAGE_SELF)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        own = resource.getrusage(resource.RUSAGE_SELF)
        self.seconds = (
            own.ru_utime + own.ru_stime - self._own.ru_utime - self._own.ru_stime + sum(self.seen.values()) / self.TICK
        )


def memory_of_tree() -> tuple[int, float, float]:
    """(processes, RSS MB, PSS MB) of every process under this one."""
    pids = [p.pid for p in proctree.descendants(os.getpid())]
    rss, pss = rss_and_pss_kb(pids)
    return len(pids), rss / 1024, pss / 1024


async def throughput(user, *, max_warm: int) -> tuple[float, float, tuple[int, float, float]]:
    """(turns a second, CPU seconds a turn, memory while the chats are warm) for CHATS chats
    each sending FOLLOW_UPS follow-ups after a first turn, all chats at once. The runtime is
    started here and shut down before the CPU is read, so that every process has been waited for."""
    built = await composition.start(composition.build(max_warm=max_warm), recover_first=False)
    sessions = [await new_chat(user) for _ in range(CHATS)]
    for session in sessions:
        await turns.submit_message(engine=built, session_id=session.id, user=user, text="My name is Ada")
    await built.idle()
    memory = memory_of_tree()
    # Only the follow-ups count: processes still warm from the first turns have their CPU so far
    # subtracted.
    before = CpuMeter()
    with before:
        await asyncio.sleep(0.1)
    with CpuMeter() as meter:
        start = time.perf_counter()
        for _ in range(FOLLOW_UPS):
            for session in sessions:
                await turns.submit_message(engine=built, session_id=session.id, user=user, text="What is my name?")
            await built.idle()
        wall = time.perf_counter() - start
    await composition.stop(built)
    used = meter.seconds - sum(ticks for key, ticks in before.seen.items() if key in meter.seen) / CpuMeter.TICK
    failed = [
        (t.status, t.error[:300])
        async for t in Turn.objects.filter(session__in=sessions).exclude(status=Turn.Status.DONE)
    ]
    if failed:
        print(f"  ({len(failed)} of {CHATS * (FOLLOW_UPS + 1)} turns did not end well: {failed})")
    count = CHATS * FOLLOW_UPS
    return count / wall, used / count, memory


async def app_part(user) -> None:
    built = await composition.start(composition.build(), recover_first=False)
    app_first, app_follow, raw_warm_samples = await app_latency(built, user)
    await composition.stop(built)

    raw_first, raw_follow = raw_cold(TMP / "raw-cold")

    print(f"\nFollow-up turn, send -> first frame with the answer's text (median of {REPEATS}):")
    print(f"  the app (warm process)        {median_ms(app_follow)}")
    print(f"  raw CLI, cold --resume        {median_ms(raw_follow)}")
    print(f"  raw CLI, warm (stream-json)   {median_ms(raw_warm_samples)}")
    app_m, cold_m, warm_m = (statistics.median(s) for s in (app_follow, raw_follow, raw_warm_samples))
    print(f"  app / raw warm: {app_m / warm_m:.1f}x   raw cold / app: {cold_m / app_m:.1f}x faster")
    print(f"\nA new chat's first turn, send -> first frame with the answer's text (median of {REPEATS}):")
    print(f"  the app                       {median_ms(app_first)}")
    print(f"  raw CLI --session-id          {median_ms(raw_first)}")
    print(f"  app overhead: {(statistics.median(app_first) / statistics.median(raw_first) - 1) * 100:+.0f} %")

    warm_rate, warm_cpu, memory = await throughput(user, max_warm=CHATS)
    cold_rate, cold_cpu, _ = await throughput(user, max_warm=0)
    print(f"\n{CHATS} chats x {FOLLOW_UPS} follow-ups, all chats at once (CLAUDE_MAX_CONCURRENT=20):")
    print(f"  warm (CLAUDE_MAX_WARM={CHATS})     {warm_rate:6.1f} turns/s   {warm_cpu:5.2f} CPU s a turn")
    print(f"  cold (CLAUDE_MAX_WARM=0)      {cold_rate:6.1f} turns/s   {cold_cpu:5.2f} CPU s a turn")
    print(f"  warm / cold: {warm_rate / cold_rate:.1f}x the turns a second, {cold_cpu / warm_cpu:.1f}x less CPU a turn")
    processes, rss, pss = memory
    print(
        f"\nMemory of {CHATS} warm sessions: {processes} processes, RSS {rss:,.0f} MB in all "
        f"({rss / CHATS:,.0f} MB a session), PSS {pss:,.0f} MB ({pss / CHATS:,.0f} MB a session)"
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench", password="bench-pass-123")
    print(
        f"Claude Code {subprocess.run([CLI, '--version'], capture_output=True, text=True).stdout.strip()}, "
        f"{os.cpu_count()} cores, sandbox {settings.CLAUDE_SANDBOX}"
    )
    try:
        asyncio.run(app_part(user))
    finally:
        STUB.stop()


if __name__ == "__main__":
    main()
