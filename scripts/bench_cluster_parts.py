"""The cluster benchmark's parts (scripts/bench_cluster.py): its processes, a CPU meter, its clients."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import bench_live
import psycopg

from devtools import servers

ROOT = Path(__file__).resolve().parent.parent
APP = "project.asgi:application"


# -- processes ------------------------------------------------------------------------------------
class Processes:
    """Web processes and engines of one cluster, their logs in ``folder``, its database ``db``."""

    def __init__(self, folder: Path, db: str) -> None:
        self.folder, self.db = folder, db
        self.webs: list[tuple[subprocess.Popen[bytes], int]] = []
        self.engines: dict[str, subprocess.Popen[bytes]] = {}

    def web(self, **extra: str) -> int:
        port = servers.free_port()
        log = open(self.folder / f"web-{port}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", *bench_live.DAPHNE_OPTIONS, "-b", "127.0.0.1", "-p", str(port), APP],
            cwd=ROOT,
            env={**os.environ, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        bench_live.wait_serving(process, port, self.folder / f"web-{port}.log", timeout=90)
        self.webs.append((process, port))
        return port

    def stop_webs(self) -> tuple[int, float]:
        """Stop every web process (SIGTERM): how many had to be killed after 30 s, and the seconds the
        last one took to exit."""
        started = time.monotonic()
        for process, _ in self.webs:
            process.terminate()
        killed = 0
        for process, _ in self.webs:
            try:
                process.wait(max(0.1, 30 - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                killed += 1
        self.webs = []
        return killed, time.monotonic() - started

    def engine(self, node: str) -> None:
        log = open(self.folder / f"engine-{node}.log", "ab")
        self.engines[node] = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "engine"],
            cwd=ROOT,
            env={**os.environ, "CLAUDE_NODE_ID": node},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while not one(self.db, "SELECT 1 FROM chat_node WHERE id = %s AND NOT dead AND NOT draining", node):
            if self.engines[node].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"engine {node} did not start: see {self.folder}/engine-{node}.log")
            time.sleep(0.1)

    def stop_engines(self) -> None:
        for process in self.engines.values():
            process.terminate()
        for process in self.engines.values():
            process.wait(120)
        self.engines = {}

    def pids(self) -> list[int]:
        return [p.pid for p, _ in self.webs] + [p.pid for p in self.engines.values()]

    def close(self) -> None:
        self.stop_webs()
        self.stop_engines()


def one(db: str, query: str, *args: object) -> object:
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(query, args).fetchone()
    return row[0] if row else None


class CpuMeter:
    """CPU seconds of the given processes and every process under them, read from /proc every 50 ms."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.seen: dict[tuple[int, str], float] = {}
        self.start_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        children: dict[int, list[int]] = {}
        stats: dict[int, tuple[str, float]] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                raw = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = raw.rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(name))
            stats[int(name)] = (fields[19], (int(fields[11]) + int(fields[12])) / tick)
        todo = list(self.roots)
        while todo:
            pid = todo.pop()
            if pid in stats:
                started, cpu = stats[pid]
                self.seen[(pid, started)] = cpu
            todo.extend(children.get(pid, []))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self.start_total = sum(self.seen.values())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values()) - self.start_total


# -- clients --------------------------------------------------------------------------------------
def api(port: int, token: str, session: str, message: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/analysis/chat",
        data=json.dumps({"sessionId": session, "message": message}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_turns_over(db: str, session: str) -> None:
    while one(
        db,
        "SELECT 1 FROM chat_turn WHERE session_id = %s AND status IN ('queued', 'waiting', 'running')",
        uuid.UUID(session),
    ):
        time.sleep(0.02)


async def follow_up_ms(port: int, cookie: str, session: Any, db: str) -> float:
    """A new chat's first turn, then its follow-up timed: send -> first frame with the answer."""
    server = bench_live.Server(host="127.0.0.1", port=port, cookie=cookie)
    socket = await bench_live.Socket.open(server, f"/ws/chat/{session.id}/")
    await socket.receive()
    await _send(socket, "My name is Ada")
    await _until(socket, "Nice")
    await asyncio.to_thread(wait_turns_over, db, str(session.id))
    start = time.perf_counter()
    await _send(socket, "What is my name?")
    await _until(socket, "Your")
    seconds = time.perf_counter() - start
    await asyncio.to_thread(wait_turns_over, db, str(session.id))
    await socket.close()
    return seconds


async def _send(socket: bench_live.Socket, text: str) -> None:
    payload = json.dumps({"message": text}).encode()
    mask = os.urandom(4)
    length = len(payload)
    head = bytes([0x81, 0x80 | length]) if length < 126 else bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    socket.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    await socket.writer.drain()


async def _until(socket: bench_live.Socket, needle: str) -> None:
    while needle not in await asyncio.wait_for(socket.receive(), 120):
        pass


def send_into(into: list[object], port: int, token: str, session: str, message: str) -> None:
    into.append(api(port, token, session, message))


def follow_ups(port: int, token: str, session: str, failures: list[object]) -> None:
    for _ in range(5):
        status, answer = api(port, token, session, "What is my name?")
        if status != 200:
            failures.append(answer)


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000
