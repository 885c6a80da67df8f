#!/usr/bin/env python
"""Benchmark: what grows with a team's history, and what many people at once cost.

Cases (all by default; pick with --cases): opening a chat of 10 → 100,000 turns and Load older
(pages); searching the chat list at 11,000 and 111,000 turns (search); 4 people opening a long
chat at once through Daphne, and the login page meanwhile (concurrent); a reconnect storm of
1,000 websockets on the in-memory channel layer and on Redis, a page meanwhile, and a message to
every socket (sockets, redis); the channel layer's cost per send (layer); expire_sessions over
10,000 small and 1,000 large idle chats (expire).

Prints figures, never asserts: these machines are noisy, so compare the ratios measured in one
run. Uses a throw-away SQLite database (and Redis) in a temporary folder, deleted at the end;
run with `.venv/bin/python scripts/bench.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = Path(tempfile.mkdtemp(prefix="chat-bench-"))
(_tmp / "staticfiles").mkdir()
ENV = {
    "APP_DATA_DIR": str(_tmp),
    "DATABASE_URL": f"sqlite:///{_tmp}/bench.sqlite3",
    "DJANGO_SETTINGS_MODULE": "project.settings",
    "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
    "CLAUDE_WORKDIR": str(_tmp / "work"),
    "CLAUDE_CONFIG_DIR": str(_tmp / "claude"),
    "CLAUDE_ARCHIVE_DIR": str(_tmp / "archive"),
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

import bench_data  # noqa: E402
import bench_live  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from chat.models import Event, Session, Turn  # noqa: E402

REPEATS = 7
CASES = ("pages", "search", "concurrent", "sockets", "redis", "layer", "expire")


def timed_get(
    client: Client, url: str, repeats: int = REPEATS, *, first: list[float] | None = None
) -> tuple[float, int]:
    start = time.perf_counter()
    client.get(url)  # warms (templates compiled, finished turns rendered once); timed on its own
    if first is not None:
        first.append(time.perf_counter() - start)
    samples, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.content)
    return statistics.median(samples), size


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from django.contrib.auth import get_user_model

        self.args = args
        self.user = get_user_model().objects.create_user("bench", password="bench")
        self.client = Client()
        self.client.force_login(self.user)
        self.chats: dict[int, Session] = {}
        self.csrf = secrets.token_hex(16)
        self.cookie = f"sessionid={self.client.cookies['sessionid'].value}; csrftoken={self.csrf}"

    # -- pages and search ------------------------------------------------------------------
    def pages_and_search(self, *, pages: bool, search: bool) -> None:
        sizes = [n for n in (10, 1_000, 10_000, 100_000) if n <= self.args.turns]
        if pages:
            print(f"Opening a chat (median of {REPEATS} GETs; turns with 3 events each; ratio to the 1,000-turn chat)")
        base = None
        for turns in sizes:
            started = time.perf_counter()
            self.chats[turns] = bench_data.make_chat(self.user, turns)
            made = time.perf_counter() - started
            if pages:
                first: list[float] = []
                seconds, size = timed_get(self.client, self.chats[turns].get_absolute_url(), first=first)
                base = seconds if turns == 1_000 else base
                ratio = f"{seconds / base:5.2f}x" if base else "     "
                print(
                    f"  {turns:>7,} turns: {ms(seconds)}, {size / 1024:6.1f} KiB page, {ratio}; "
                    f"first open {ms(first[0]).strip()}   (made in {made:.0f} s)"
                )
            if search and turns in (10_000, 100_000):
                self.search(total=sum(self.chats))
        if pages and 100_000 in self.chats:
            chat = self.chats[100_000]
            middle = Turn.objects.filter(session=chat).order_by("created_at", "id")[50_000]
            seconds, _size = timed_get(self.client, f"/chat/{chat.id}/older/?before={middle.id}")
            print(f"  Load older from the middle of the 100,000-turn chat: {ms(seconds)}")

    def search(self, *, total: int) -> None:
        print(f"Searching the chat list over {total:,} turns ({Event.objects.count():,} events), median of {REPEATS}:")
        queries = []
        for query in ("marmalade", "answer", "question marmalade", "zebra"):
            seconds, _size = timed_get(self.client, "/?q=" + query.replace(" ", "+"))
            queries.append(self._count_queries(lambda q=query: self.client.get("/?q=" + q.replace(" ", "+"))))
            print(f"  “{query}”: {ms(seconds)}")
        print(f"  statements a search page sends (session, user, search…): {queries[0]}")

    @staticmethod
    def _count_queries(run) -> int:
        seen = []
        with connection.execute_wrapper(lambda execute, sql, *rest: (seen.append(sql), execute(sql, *rest))[1]):
            run()
        return len(seen)

    # -- through Daphne ----------------------------------------------------------------------
    def server_env(self, **extra: str) -> dict[str, str]:
        # One member opens all the storm's sockets (and reopens those whose handshake timed out): the
        # per-member cap (20 by default) is lifted.
        return {**ENV, "DJANGO_DEBUG": "false", "CLAUDE_MAX_SOCKETS_PER_MEMBER": str(self.args.sockets * 10), **extra}

    def long_chat(self) -> Session:
        if 10_000 not in self.chats:
            self.chats[10_000] = bench_data.make_chat(self.user, 10_000)
        return self.chats[10_000]

    def concurrent(self) -> None:
        url = self.long_chat().get_absolute_url()
        with bench_live.daphne(env=self.server_env(), cookie=self.cookie, log=_tmp / "daphne.log") as server:
            bench_live.timed_gets(server, url, repeats=2)
            cpu = server.cpu_seconds()
            alone = bench_live.timed_gets(server, url, repeats=REPEATS * 2)
            cpu = (server.cpu_seconds() - cpu) / len(alone)
            login_alone = bench_live.timed_gets(server, "/accounts/login/", repeats=REPEATS * 2)
            busy_cpu, started = server.cpu_seconds(), time.perf_counter()
            four, login = bench_live.concurrent_gets(
                server, url, people=4, repeats=REPEATS * 2, also="/accounts/login/"
            )
            busy_cpu, busy_wall = server.cpu_seconds() - busy_cpu, time.perf_counter() - started
        one_ms, four_ms = bench_live.median_ms(alone), bench_live.median_ms(four)
        print("Opening the 10,000-turn chat through Daphne (median of every request):")
        print(
            f"  one person: {one_ms:.1f} ms ({cpu * 1000:.1f} ms of server CPU); 4 people at once: {four_ms:.1f} ms "
            f"each ({four_ms / one_ms:.2f}x)"
        )
        # One interpreter runs Python one thread at a time: near 1.0 here, the pages wait for that, not for each other.
        print(
            f"  meanwhile the server used {busy_cpu / busy_wall:.2f} CPU cores "
            f"({busy_cpu / (len(four) + len(login)) * 1000:.1f} ms of CPU a request)"
        )
        print(
            f"  the login page alone: {bench_live.median_ms(login_alone):.1f} ms; while the 4 open it: "
            f"{bench_live.median_ms(login):.1f} ms"
        )

    def sockets(self, *, layer: str) -> None:
        count = self.args.sockets
        chats = self._socket_chats(count // 10)
        paths = []
        for chat, since in chats:
            paths += [f"/ws/chat/{chat}/?{since}"] * 10
        env = self.server_env()
        redis = None
        if layer == "redis":
            from devtools import servers

            if reason := servers.redis_available():
                print(f"Redis: skipped ({reason})")
                return
            redis = servers.redis()
            env["REDIS_URL"] = redis.__enter__()
        try:
            with bench_live.daphne(env=env, cookie=self.cookie, log=_tmp / f"daphne-{layer}.log") as server:
                page = self.long_chat()
                quiet = bench_live.timed_gets(server, page.get_absolute_url(), repeats=REPEATS)
                result = asyncio.run(self._storm(server, paths, page.get_absolute_url()))
        finally:
            if redis is not None:
                redis.__exit__(None, None, None)
        seconds, first_bytes, during, fanout = result
        name = "Redis (channels-redis)" if layer == "redis" else "the in-memory layer"
        print(f"{count:,} websockets at once on {name} ({count // 10} chats of 50 turns, 10 sockets each):")
        print(
            f"  all connected and caught up in {seconds:.2f} s ({count / seconds:,.0f}/s; "
            f"{self.connect_cpu * 1000:.1f} ms of server CPU each), {first_bytes / count / 1024:.1f} KiB sent to each"
            + (f"; {self.failed:,} handshakes refused or timed out and retried" if self.failed else "")
        )
        print(
            f"  a page meanwhile: {bench_live.median_ms(during):.1f} ms (quiet: {bench_live.median_ms(quiet):.1f} ms)"
        )
        print(f"  a rename of each chat reached all {count:,} sockets in {fanout:.2f} s")

    def _socket_chats(self, count: int) -> list[tuple[str, str]]:
        made = []
        for n in range(count):
            chat = bench_data.make_chat(self.user, 50, title=f"Socket chat {n}")
            turn = Turn.objects.filter(session=chat).order_by("-id").first()
            event = Event.objects.filter(turn=turn).order_by("-id").first()
            made.append((str(chat.id), f"turn={turn.pk}&event={event.pk}&unfinished="))
        return made

    async def _storm(self, server, paths: list[str], page: str):
        loop = asyncio.get_running_loop()
        cpu = server.cpu_seconds()
        during: list[float] = []
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                during.extend(await loop.run_in_executor(None, lambda: bench_live.timed_gets(server, page, repeats=1)))
                await asyncio.sleep(0.02)

        watcher = asyncio.ensure_future(watch())
        seconds, sockets, first_bytes, self.failed = await bench_live.storm(server, paths)
        stop.set()
        await watcher
        # The pages fetched meanwhile are in it too: a few dozen against a thousand connects.
        self.connect_cpu = (server.cpu_seconds() - cpu) / len(paths)
        by_chat: dict[str, list] = {}
        for path, socket in zip(paths, sockets, strict=True):
            by_chat.setdefault(path.split("/")[3], []).append(socket)
        fanout = await bench_live.broadcast(server, by_chat, csrf=self.csrf)
        await asyncio.gather(*(socket.close() for socket in sockets))
        return seconds, first_bytes, during, fanout

    # -- the channel layer on its own ----------------------------------------------------------
    def layer(self) -> None:
        from channels.layers import InMemoryChannelLayer as Channels

        layers = {"Channels' in-memory layer": Channels}
        try:
            from project.layers import InMemoryChannelLayer as Ours

            layers["project.layers"] = Ours
        except ImportError:
            pass
        print("A group send to one chat of 10 sockets, per call (every socket waiting in receive):")
        for name, cls in layers.items():
            figures = []
            for sockets in (1_000, 10_000):
                figures.append(f"{asyncio.run(self._send_cost(cls, sockets)) * 1000:.3f} ms at {sockets:,} sockets")
            print(f"  {name}: " + ", ".join(figures))

    @staticmethod
    async def _send_cost(cls, sockets: int) -> float:
        layer = cls()
        channels = [await layer.new_channel() for _ in range(sockets)]
        for n, channel in enumerate(channels):
            await layer.group_add(f"chat-{n // 10}", channel)
            layer.channels.setdefault(channel, asyncio.Queue())  # as a consumer waiting in receive() leaves it
        calls = 300
        start = time.perf_counter()
        for n in range(calls):
            await layer.group_send(f"chat-{n % (sockets // 10)}", {"type": "live.fragment", "html": "<p>x</p>"})
            for channel in channels[(n % (sockets // 10)) * 10 :][:10]:
                layer.channels[channel].get_nowait()
        return (time.perf_counter() - start) / calls

    # -- expire_sessions ---------------------------------------------------------------------
    def expire(self) -> None:
        from django.contrib.auth import get_user_model

        print("expire_sessions (archives every idle chat; -v 0):")
        disk = self._disk_speed()
        for count, size in ((10_000, 5 * 1024), (self.args.large_chats, 1024 * 1024)):
            owner = get_user_model().objects.create_user(f"idle-{count}-{size}")
            total = bench_data.idle_chats(owner, count=count, size=size, folder=_tmp / f"transcripts-{count}-{size}")
            start, cpu = time.perf_counter(), time.process_time()
            queries = self._count_queries(
                lambda: call_command(
                    "expire_sessions", "--older-than", "24", "-v", "0", stdout=io.StringIO(), stderr=io.StringIO()
                )
            )
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            archived = Session.objects.filter(owner=owner, archived_at__isnull=False).count()
            # CPU time (all its threads) next to wall time: on a shared machine the wall time also
            # holds the waits for other people's work.
            print(
                f"  {count:,} chats of {size // 1024:,} KiB: {seconds:.1f} s, {cpu:.1f} s of CPU "
                f"({seconds / count * 1000:.2f} ms a chat, {total / seconds / 1e6:.0f} MB/s of transcripts, "
                f"{queries / count:.2f} queries a chat); {archived:,} archived"
            )
            Session.objects.filter(owner=owner).update(last_activity_at=timezone.now())
        print(f"  for scale: this disk writes {disk:.0f} MB/s (256 MB, fsync'd)")

    @staticmethod
    def _disk_speed() -> float:
        path = _tmp / "disk-speed"
        block = os.urandom(1024 * 1024)
        start = time.perf_counter()
        with path.open("wb") as out:
            for _ in range(256):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        seconds = time.perf_counter() - start
        path.unlink()
        return 256 * 1024 * 1024 / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--turns", type=int, default=100_000, help="the longest chat (default 100,000)")
    parser.add_argument("--sockets", type=int, default=1_000, help="websockets in the storm (default 1,000)")
    parser.add_argument("--large-chats", type=int, default=1_000, help="idle chats of 1 MB to expire (default 1,000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, server logs)")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    call_command("migrate", verbosity=0)
    bench = Bench(args)
    try:
        if cases & {"pages", "search"}:
            bench.pages_and_search(pages="pages" in cases, search="search" in cases)
        if "concurrent" in cases:
            bench.concurrent()
        if "sockets" in cases:
            bench.sockets(layer="memory")
        if "redis" in cases:
            bench.sockets(layer="redis")
        if "layer" in cases:
            bench.layer()
        if "expire" in cases:
            bench.expire()
    finally:
        connection.close()
        if args.keep:
            print(f"Kept {_tmp}")
        else:
            shutil.rmtree(_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
