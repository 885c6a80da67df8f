#!/usr/bin/env python
"""Benchmark: turns on warm Claude Code processes against the raw CLI, cold and warm.

In one run, side by side, with the real pinned CLI against the offline Messages-API stand-in:

- follow-up turn, from sending the message to the first frame carrying the answer's text: the app
  (a websocket send through ``project.asgi.application``, the runtime in this process, agents in
  their bubblewrap sandbox) vs the raw CLI cold (``--print --resume``) vs the raw CLI warm (one
  process fed ``--input-format stream-json``);
- a new chat's first turn from the New chat page (its socket makes the chat): the app vs the raw CLI
  (``--print --session-id``), and the app after a second of "typing" (its first keystroke has the
  chat's process started ahead);
- where each turn's time goes, stage by stage, beside the raw CLI's (the hot path is wrapped here,
  never in the product);
- throughput and CPU seconds per turn: 20 chats each sending 5 follow-ups, warm (the default)
  vs cold (``CLAUDE_MAX_WARM=0``: every turn starts a process that resumes the transcript);
- memory of N warm sessions (RSS and PSS of every process of the server's tree).

Prints figures, never asserts; compare the ratios of one run. Run with
`.venv/bin/python scripts/bench_turns.py` (about four minutes; ``--latency``: the latency part
alone, about a minute; ``BENCH_REPEATS=n``: n runs of each).
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

# -- where a turn's time goes ----------------------------------------------------------------
# The product's hot path, wrapped here (never in the product): each stage notes the moment it is
# first reached after a send, one turn at a time.


class Stages:
    """Moments of one turn at a time, in seconds after its send."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.seen: dict[str, float] = {}
        self.runs: dict[str, dict[str, list[float]]] = {}

    def begin(self) -> None:
        self.start, self.seen = time.perf_counter(), {}

    def mark(self, stage: str) -> None:
        if self.start is not None and stage not in self.seen:
            self.seen[stage] = time.perf_counter() - self.start

    def end(self, kind: str) -> None:
        runs = self.runs.setdefault(kind, {})
        for stage, at in self.seen.items():
            runs.setdefault(stage, []).append(at)
        self.start = None

    def report(self, kind: str, order: list[tuple[str, str]]) -> None:
        runs = self.runs.get(kind, {})
        words = dict(order)
        # In the order they came: some stages run side by side (marked running, and the process).
        medians = sorted((statistics.median(runs[stage]) * 1000, stage) for stage in words if stage in runs)
        last = 0.0
        for at, stage in medians:
            print(f"    {words[stage]:<44} {at:7.1f} ms  (+{at - last:5.1f})")
            last = at


STAGES = Stages()
APP_STAGES = [
    ("received", "received by the socket"),
    ("member", "member read again"),
    ("made", "chat made (New chat page)"),
    ("saved", "saved (turn, title, chat status)"),
    ("shown", "shown to the chat's tabs (turn added)"),
    ("queued", "submitted to the engine"),
    ("slot", "process slot taken"),
    ("running", "marked running (saved, sent)"),
    ("spec", "spec built"),
    ("process", "process taken (or started)"),
    ("stdin", "written to the CLI's stdin"),
    ("first_line", "first line from the CLI after stdin"),
    ("proxy", "the request's head reached the egress proxy"),
    ("proxy_body", "its body read by the egress proxy"),
    ("api", "the CLI's request reached the API stand-in"),
    ("proxy_answer", "the answer's head back at the egress proxy"),
    ("first_delta", "first text delta from the CLI"),
    ("recorded", "text event saved"),
    ("group_send", "fragment sent to the channel layer"),
    ("socket_send", "frame sent by the socket"),
    ("frame", "frame received by the page"),
]
RAW_STAGES = [
    ("stdin", "written to the CLI's stdin"),
    ("first_line", "first line from the CLI"),
    ("api", "the CLI's request reached the API stand-in"),
    ("frame", "first line with the answer's text"),
]


def _after(stage: str, func):
    """``func`` (a coroutine function) marking ``stage`` once it has returned."""

    async def wrapped(*args, **kwargs):
        result = await func(*args, **kwargs)
        STAGES.mark(stage)
        return result

    return wrapped


def trace_the_app() -> None:
    from channels.layers import InMemoryChannelLayer

    from chat.live import notify
    from chat.services import execution, recording
    from chat.web import consumers, sockets
    from drivers.claude import transport
    from runtime import node, pool, warm

    receive = consumers.ChatConsumer.receive

    async def received(self, text_data=None, bytes_data=None):
        STAGES.mark("received")
        return await receive(self, text_data, bytes_data)

    consumers.ChatConsumer.receive = received
    sockets.MemberSocket.still_member = _after("member", sockets.MemberSocket.still_member)
    turns._save_message = _after("saved", turns._save_message)
    create_session = chats.create_session

    def made(**kwargs):
        session = create_session(**kwargs)
        STAGES.mark("made")
        return session

    chats.create_session = made
    notify.turn_added = _after("shown", notify.turn_added)
    turns.queue_turn = _after("queued", turns.queue_turn)
    pool.Pool.acquire = _after("slot", pool.Pool.acquire)
    running = recording.Recorder.running_meanwhile

    def marked(self):
        running(self)
        self.meanwhile(_after("running", asyncio.sleep)(0))

    recording.Recorder.running_meanwhile = marked
    warm.WarmPool.take = _after("process", warm.WarmPool.take)
    spec = execution.spec_of

    def spec_built(*args, **kwargs):
        built = spec(*args, **kwargs)
        STAGES.mark("spec")
        return built

    execution.spec_of = spec_built
    write = transport.CliTransport.write

    async def written(self, data):
        await write(self, data)
        if '"type": "user"' in data or '"type":"user"' in data:
            STAGES.mark("stdin")

    transport.CliTransport.write = written
    read = transport.CliTransport._read_messages

    async def reading(self):
        async for message in read(self):
            if "stdin" in STAGES.seen:
                STAGES.mark("first_line")
                event = message.get("event") if isinstance(message, dict) else None
                if isinstance(event, dict) and event.get("type") == "content_block_delta":
                    STAGES.mark("first_delta")
            yield message

    transport.CliTransport._read_messages = reading
    delta = recording.Recorder.delta

    async def recorded(self, text):
        first = self.streaming is None
        await delta(self, text)
        if first:
            STAGES.mark("recorded")

    recording.Recorder.delta = recorded
    group_send = InMemoryChannelLayer.group_send

    async def sent(self, group, message):
        await group_send(self, group, message)
        if message.get("shown") == "event_added":
            STAGES.mark("group_send")

    InMemoryChannelLayer.group_send = sent
    live_fragment = consumers.ChatConsumer.live_fragment

    async def forwarded(self, event):
        await live_fragment(self, event)
        if event.get("shown") == "event_added":
            STAGES.mark("socket_send")

    consumers.ChatConsumer.live_fragment = forwarded
    record = StubServer.record

    def api(self, *args, **kwargs):
        STAGES.mark("api")
        return record(self, *args, **kwargs)

    StubServer.record = api
    from drivers.egress import proxy

    forward = proxy.EgressProxy._api

    async def proxied(self, client, request, kept):
        STAGES.mark("proxy")
        return await forward(self, client, request, kept)

    proxy.EgressProxy._api = proxied
    proxy.EgressProxy._body = _after("proxy_body", proxy.EgressProxy._body)
    proxy.exchange = _after("proxy_answer", proxy.exchange)
    del node  # (imported so that the runtime is loaded before it is wrapped)


REPEATS = int(os.environ.get("BENCH_REPEATS", "9"))
# --latency: only the latency figures and their stages (a minute), not throughput and memory.
ONLY_LATENCY = "--latency" in sys.argv[1:]
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
    STAGES.begin()
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
            STAGES.mark("first_line")
            if first is None and needle in line:
                first = time.perf_counter() - start
                STAGES.mark("frame")
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
        STAGES.end("raw-cold-first")
        follow_ups.append(raw_print(["--resume", sid, "What is my name?"], cwd, config, ANSWER))
        STAGES.end("raw-cold-follow")
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
        STAGES.begin()
        start = time.perf_counter()
        self.proc.stdin.write(json.dumps({"type": "user", "message": {"role": "user", "content": text}}) + "\n")
        self.proc.stdin.flush()
        STAGES.mark("stdin")
        first = None
        for line in self.proc.stdout:
            STAGES.mark("first_line")
            if first is None and needle in line:
                first = time.perf_counter() - start
                STAGES.mark("frame")
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
    """A logged-in browser tab of one chat (``session``), or of the New chat page: its websocket."""

    def __init__(self, engine: Engine, cookie: str, session: Session | None = None) -> None:
        self.session = session
        self.engine = engine
        path = f"/ws/chat/{session.id}/" if session is not None else f"/ws/chat/new/{uuid.uuid4()}/"
        self.socket = WebsocketCommunicator(
            application_for(engine),
            path,
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())],
        )

    async def open(self) -> None:
        connected, _ = await self.socket.connect()
        assert connected
        if self.session is not None:
            await self.until('id="turns"')

    async def typing(self) -> None:
        """The first keystroke of a message (the page then has the chat's process started)."""
        await self.socket.send_to(text_data=json.dumps({"action": "typing"}))

    async def until(self, needle: str) -> None:
        seen = ""
        while needle not in seen:
            seen = await self.socket.receive_from(timeout=60)

    async def turn(self, text: str, needle: str) -> float:
        """Seconds from the send to the first frame holding ``needle``; then waits for the turn's end."""
        STAGES.begin()
        start = time.perf_counter()
        await self.socket.send_to(text_data=json.dumps({"message": text}))
        await self.until(needle)
        first = time.perf_counter() - start
        STAGES.mark("frame")
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


TYPING_SECONDS = 1.0


async def app_latency(engine: Engine, user) -> tuple[list[float], list[float], list[float], list[float]]:
    """(the app's first turns from the New chat page, its follow-ups, the raw warm CLI's follow-ups,
    the app's first turns after TYPING_SECONDS of typing), taken in turns so that the machine's load
    weighs on all alike."""
    firsts, follow_ups, raw, typed = [], [], [], []
    cookie = await login_cookie(user)
    warm = RawWarm(TMP / "raw-warm")
    await new_chat(user)  # the member's folder exists (the first chat makes it)
    for _ in range(REPEATS):
        tab = Tab(engine, cookie)
        await tab.open()
        firsts.append(await tab.turn("My name is Ada", APP_GREETING))
        STAGES.end("app-first")
        await tab.drain()
        follow_ups.append(await tab.turn("What is my name?", APP_ANSWER))
        STAGES.end("app-follow")
        await tab.close()
        raw.append(warm.turn("What is my name?", ANSWER))
        STAGES.end("raw-warm")
        tab = Tab(engine, cookie)
        await tab.open()
        await tab.typing()
        await asyncio.sleep(TYPING_SECONDS)
        typed.append(await tab.turn("My name is Ada", APP_GREETING))
        STAGES.end("app-typed")
        await tab.close()
    warm.close()
    return firsts, follow_ups, raw, typed


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
    app_first, app_follow, raw_warm_samples, app_typed = await app_latency(built, user)
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
    print(f"  the app, after {TYPING_SECONDS:g} s of typing  {median_ms(app_typed)}")
    typed_m = statistics.median(app_typed)
    print(
        f"  typed / raw cold: {typed_m / statistics.median(raw_first):.2f}x   "
        f"typed / the app's warm follow-up: {typed_m / app_m:.1f}x"
    )

    print(f"\nWhere a follow-up's time goes (medians of {REPEATS}, ms after the send, +since the stage before):")
    print("  the app:")
    STAGES.report("app-follow", APP_STAGES)
    print("  raw CLI, warm:")
    STAGES.report("raw-warm", RAW_STAGES)
    print("Where a first turn's time goes:")
    print("  the app:")
    STAGES.report("app-first", APP_STAGES)
    print("  raw CLI, cold --session-id:")
    STAGES.report("raw-cold-first", RAW_STAGES)
    print(f"  the app, after {TYPING_SECONDS:g} s of typing (its process started at the first keystroke):")
    STAGES.report("app-typed", APP_STAGES)
    if ONLY_LATENCY:
        return

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
    trace_the_app()
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
