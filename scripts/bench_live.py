"""The benchmark's live parts: the app served by Daphne in a subprocess (as `scripts/run` serves
it), pages fetched from it by several people at once, and a thousand websockets.

The websocket client is a few lines of asyncio (RFC 6455, text frames only): nothing to install.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import os
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As scripts/run and the README's production command start it.
DAPHNE_OPTIONS = ("--websocket_connect_timeout", "30")


@dataclass
class Server:
    host: str
    port: int
    cookie: str  # "sessionid=…; csrftoken=…" of a logged-in person
    pid: int = 0

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (all its threads): steadier than wall
        time on a machine others use too."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def get(self, path: str, *, connection: http.client.HTTPConnection | None = None) -> tuple[float, int]:
        """Seconds to fetch ``path`` whole, and its size."""
        own = connection is None
        conn = connection or http.client.HTTPConnection(self.host, self.port, timeout=120)
        start = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": self.cookie})
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        if own:
            conn.close()
        assert response.status == 200, (path, response.status)
        return elapsed, len(body)

    def post(self, path: str, fields: dict[str, str], *, csrf: str) -> int:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        body = urllib.parse.urlencode(fields)
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Cookie": self.cookie,
                "X-CSRFToken": csrf,
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{self.host}:{self.port}/",
                "HX-Request": "true",
            },
        )
        status = conn.getresponse().status
        conn.close()
        return status


@contextlib.contextmanager
def daphne(*, env: dict[str, str], cookie: str, log: Path) -> Iterator[Server]:
    """The app served by Daphne on a free port, with this environment."""
    from devtools.servers import free_port

    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                *DAPHNE_OPTIONS,
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "project.asgi:application",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_serving(process, port, log)
        yield Server(host="127.0.0.1", port=port, cookie=cookie, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_serving(process: subprocess.Popen[bytes], port: int, log: Path, *, timeout: float = 60) -> None:
    """Until the server on ``port`` answers (or fail with its log, if it ended or did not answer)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + log.read_text(errors="replace")) from None
            time.sleep(0.2)


def timed_gets(server: Server, path: str, *, repeats: int) -> list[float]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    try:
        return [server.get(path, connection=conn)[0] for _ in range(repeats)]
    finally:
        conn.close()


def concurrent_gets(
    server: Server, path: str, *, people: int, repeats: int, also: str | None = None
) -> tuple[list[float], list[float]]:
    """``people`` fetching ``path`` ``repeats`` times each, all at once; with ``also``, one more
    fetching that page meanwhile. Every request's seconds, for both."""
    samples: list[float] = []
    others: list[float] = []
    running = threading.Event()
    start = threading.Barrier(people + (1 if also else 0))

    def person() -> None:
        start.wait()
        samples.extend(timed_gets(server, path, repeats=repeats))

    def bystander() -> None:
        start.wait()
        time.sleep(0.01)
        while running.is_set():
            others.extend(timed_gets(server, also, repeats=1))  # type: ignore[arg-type]
            time.sleep(0.005)

    running.set()
    threads = [threading.Thread(target=person) for _ in range(people)]
    watcher = threading.Thread(target=bystander) if also else None
    for thread in threads + ([watcher] if watcher else []):
        thread.start()
    for thread in threads:
        thread.join()
    running.clear()
    if watcher:
        watcher.join()
    return samples, others


# ---------------------------------------------------------------------------------------
# Websockets


class Socket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Server, path: str) -> Socket:
        reader, writer = await asyncio.open_connection(server.host, server.port, limit=2**24)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://{server.host}:{server.port}\r\nCookie: {server.cookie}\r\n\r\n"
            ).encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"websocket refused: {status[:200]!r}")
        return cls(reader, writer)

    async def receive(self) -> str:
        """The next text message (control frames other than close are skipped)."""
        message = b""
        while True:
            head = await self.reader.readexactly(2)
            fin, opcode, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            if opcode == 8:
                raise ConnectionError("closed by the server")
            if opcode in (0, 1):
                message += payload
                if fin:
                    return message.decode()

    async def close(self) -> None:
        mask = os.urandom(4)
        payload = struct.pack("!H", 1000)
        self.writer.write(
            bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        )
        with contextlib.suppress(OSError):
            await self.writer.drain()
        self.writer.close()


async def storm(server: Server, paths: list[str]) -> tuple[float, list[Socket], int, int]:
    """Open a socket on every path at once (a reconnect storm); seconds until each has received
    its first message, the sockets, the bytes those first messages held, and how many attempts
    failed (a refused or timed-out handshake is retried after a second or so, as a page does)."""
    start = time.perf_counter()
    failed = 0

    async def one(n: int, path: str) -> tuple[Socket, int]:
        nonlocal failed
        while True:
            try:
                socket = await Socket.open(server, path)
                return socket, len(await socket.receive())
            except (OSError, EOFError, ConnectionError, RuntimeError, asyncio.IncompleteReadError):
                failed += 1
                if time.perf_counter() - start > 300:
                    raise
                await asyncio.sleep(0.5 + (n % 100) / 100)

    opened = await asyncio.gather(*(one(n, path) for n, path in enumerate(paths)))
    return time.perf_counter() - start, [s for s, _ in opened], sum(n for _, n in opened), failed


async def broadcast(server: Server, sockets_by_chat: dict[str, list[Socket]], *, csrf: str) -> float:
    """Rename every chat (each rename is sent to every socket of that chat); seconds until every socket has it."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()

    async def renamed(socket: Socket, title: str) -> None:
        # Its own chat's new title: the member's sidebar, sent to all their pages, may come first.
        while f'data-title="{title}"' not in await socket.receive():
            pass

    waiting = [
        asyncio.ensure_future(renamed(s, f"Renamed {n}"))
        for n, group in enumerate(sockets_by_chat.values())
        for s in group
    ]
    for n, chat in enumerate(sockets_by_chat):
        status = await loop.run_in_executor(
            None, lambda c=chat, n=n: server.post(f"/chat/{c}/rename/", {"title": f"Renamed {n}"}, csrf=csrf)
        )
        assert status == 200, status
    await asyncio.gather(*waiting)
    return time.perf_counter() - start


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000 if samples else float("nan")
