#!/usr/bin/env python
"""Benchmark: cluster mode (CLAUDE_ENGINE=cluster) against local mode, in one run.

With the real pinned CLI against the offline Messages-API stand-in, a throw-away PostgreSQL and Redis
on loopback, web processes (Daphne) and engine processes (``manage.py engine``) on this machine:

- a follow-up, from the websocket send to the first frame carrying the answer: a local-mode server
  vs a cluster's web process and engine (both on the same PostgreSQL and Redis), taken in turns;
- SIGKILL of the engine running a turn -> the chat's next turn running on another engine;
- 20 chats x 5 follow-ups at once through the API with 1, 2 and 3 engines: turns a second, and CPU
  seconds a turn (every process of the cluster: web, engines, their CLIs and sandboxes);
- 4 people opening a 10,000-turn chat at once, on 1 web process and on 4 (one each);
- every web process restarted while 10 chats send follow-ups: turns interrupted.

Prints figures, never asserts; compare the ratios of one run (the machine's load is printed).
Run with `.venv/bin/python scripts/bench_cluster.py` (a few minutes; `--cases latency,kill` picks cases); everything it starts is ended and
deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import claude_agent_sdk  # noqa: E402
import psycopg  # noqa: E402

from devtools import servers  # noqa: E402
from devtools.stub_api import StubServer  # noqa: E402

REPEATS = 7
APP = "project.asgi:application"
STACK = contextlib.ExitStack()
TMP = Path(tempfile.mkdtemp(prefix="chat-bench-cluster-"))
STACK.callback(lambda: subprocess.run(["rm", "-rf", str(TMP)], check=False))
PG = STACK.enter_context(servers.postgres())
REDIS = STACK.enter_context(servers.redis())
STUB = StubServer().start()
STACK.callback(STUB.stop)
with psycopg.connect(PG, autocommit=True) as _conn:
    _conn.execute("CREATE DATABASE bench")
DB = PG.rsplit("/", 1)[0] + "/bench"
for _folder in ("work", "claude", "archive", "staticfiles", "home"):
    (TMP / _folder).mkdir()
ENV = {
    "APP_DATA_DIR": str(TMP),
    "DATABASE_URL": DB,
    "REDIS_URL": REDIS,
    "CLAUDE_ENGINE": "cluster",
    "DJANGO_SETTINGS_MODULE": "project.settings",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "DJANGO_DEBUG": "false",
    "CLAUDE_WORKDIR": str(TMP / "work"),
    "CLAUDE_CONFIG_DIR": str(TMP / "claude"),
    "CLAUDE_ARCHIVE_DIR": str(TMP / "archive"),
    "CLAUDE_CLI": str(Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"),
    "ANTHROPIC_BASE_URL": STUB.url,
    "ANTHROPIC_API_KEY": "bench-key",
    "HOME": str(TMP / "home"),
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_MAX_CONCURRENT": "20",
    "CLAUDE_MAX_WARM": "20",
    "CLAUDE_MAX_QUEUED_PER_MEMBER": "100",
    "CLAUDE_API_BUSY_WAIT": "300",
    "CLAUDE_MAX_SOCKETS_PER_MEMBER": "100",
    # A dead engine is found within seconds (the production default waits 20 s): see the kill figure.
    "CLAUDE_NODE_HEARTBEAT": "1",
    "CLAUDE_NODE_DEAD_AFTER": "6",
    "CLAUDE_DRAIN_GRACE": "30",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

import bench_data  # noqa: E402
import bench_live  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from chat.models import Session  # noqa: E402
from chat.services import chats  # noqa: E402
from chat.services.tokens import issue_token  # noqa: E402


# -- processes ------------------------------------------------------------------------------------
class Processes:
    def __init__(self) -> None:
        self.webs: list[tuple[subprocess.Popen[bytes], int]] = []
        self.engines: dict[str, subprocess.Popen[bytes]] = {}

    def web(self, **extra: str) -> int:
        port = servers.free_port()
        log = open(TMP / f"web-{port}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", *bench_live.DAPHNE_OPTIONS, "-b", "127.0.0.1", "-p", str(port), APP],
            cwd=ROOT,
            env={**os.environ, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        bench_live.wait_serving(process, port, TMP / f"web-{port}.log", timeout=90)
        self.webs.append((process, port))
        return port

    def stop_webs(self) -> int:
        """Stop every web process (SIGTERM); how many had to be killed after 30 s."""
        for process, _ in self.webs:
            process.terminate()
        killed = 0
        for process, _ in self.webs:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                killed += 1
        self.webs = []
        return killed

    def engine(self, node: str) -> None:
        log = open(TMP / f"engine-{node}.log", "ab")
        self.engines[node] = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "engine"],
            cwd=ROOT,
            env={**os.environ, "CLAUDE_NODE_ID": node},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while not one("SELECT 1 FROM chat_node WHERE id = %s AND NOT dead AND NOT draining", node):
            if self.engines[node].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"engine {node} did not start: see {TMP}/engine-{node}.log")
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


def one(query: str, *args: object) -> object:
    with psycopg.connect(DB, autocommit=True) as conn:
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


def wait_turns_over(session: str) -> None:
    while one(
        "SELECT 1 FROM chat_turn WHERE session_id = %s AND status IN ('queued', 'waiting', 'running')",
        uuid.UUID(session),
    ):
        time.sleep(0.02)


async def follow_up_ms(port: int, cookie: str, session: Session) -> float:
    """A new chat's first turn, then its follow-up timed: send -> first frame with the answer."""
    server = bench_live.Server(host="127.0.0.1", port=port, cookie=cookie)
    socket = await bench_live.Socket.open(server, f"/ws/chat/{session.id}/")
    await socket.receive()
    await _send(socket, "My name is Ada")
    await _until(socket, "Nice")
    await asyncio.to_thread(wait_turns_over, str(session.id))
    start = time.perf_counter()
    await _send(socket, "What is my name?")
    await _until(socket, "Your")
    seconds = time.perf_counter() - start
    await asyncio.to_thread(wait_turns_over, str(session.id))
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


def _into(into: list[object], port: int, token: str, session: str, message: str) -> None:
    into.append(api(port, token, session, message))


def _follow_ups(port: int, token: str, session: str, failures: list[object]) -> None:
    for _ in range(5):
        status, answer = api(port, token, session, "What is my name?")
        if status != 200:
            failures.append(answer)


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# -- the cases ------------------------------------------------------------------------------------
def latency(user: User, cookie: str, processes: Processes) -> None:
    local_port = processes.web(CLAUDE_ENGINE="local", CLAUDE_NODE_ID="local")
    cluster_port = processes.web()
    processes.engine("a")
    local, cluster = [], []
    for _ in range(REPEATS):
        local.append(asyncio.run(follow_up_ms(local_port, cookie, chats.create_session(owner=user))))
        cluster.append(asyncio.run(follow_up_ms(cluster_port, cookie, chats.create_session(owner=user))))
    print(f"Follow-up, websocket send -> first frame with the answer (median of {REPEATS}, taken in turns):")
    print(
        f"  local {ms(local):.0f} ms; cluster (a web process, an engine) {ms(cluster):.0f} ms: "
        f"{ms(cluster) - ms(local):+.0f} ms ({ms(cluster) / ms(local):.2f}x)"
    )
    processes.close()


def kill(token: str, processes: Processes) -> None:
    port = processes.web()
    for node in ("a", "b"):
        processes.engine(node)
    moved, ended = [], []
    for _ in range(3):
        session = str(uuid.uuid4())
        api(port, token, session, "My name is Ada")
        threading.Thread(target=api, args=(port, token, session, "slow 60"), daemon=True).start()
        while not (
            victim := one("SELECT node FROM chat_turn WHERE session_id = %s AND status = 'running'", uuid.UUID(session))
        ):
            time.sleep(0.02)
        nxt: list[object] = []
        threading.Thread(target=_into, args=(nxt, port, token, session, "What is my name?"), daemon=True).start()
        while one("SELECT count(*) FROM chat_turn WHERE session_id = %s", uuid.UUID(session)) != 3:
            time.sleep(0.02)
        killed = time.perf_counter()
        processes.engines.pop(str(victim)).kill()
        while one("SELECT status FROM chat_turn WHERE session_id = %s AND prompt = 'slow 60'", uuid.UUID(session)) == (
            "running"
        ):
            time.sleep(0.02)
        ended.append(time.perf_counter() - killed)
        while (
            not one(
                "SELECT 1 FROM chat_turn WHERE session_id = %s AND prompt = 'What is my name?' AND status = 'running'",
                uuid.UUID(session),
            )
            and not nxt
        ):
            time.sleep(0.02)
        moved.append(time.perf_counter() - killed)
        while not nxt:
            time.sleep(0.05)
        assert "Ada" in str(nxt[0]), nxt
        processes.engine(str(victim))
    print("SIGKILL of the engine running a turn (CLAUDE_NODE_HEARTBEAT=1, CLAUDE_NODE_DEAD_AFTER=6), median of 3:")
    print(
        f"  the turn shown interrupted after {statistics.median(ended):.1f} s; the chat's next turn running on the "
        f"other engine (resumed cold, remembering) after {statistics.median(moved):.1f} s"
    )
    processes.close()


def throughput(token: str, processes: Processes) -> None:
    print("20 chats x 5 follow-ups at once through the API (one web process):")
    for engines in (1, 2, 3):
        port = processes.web()
        for node in "abc"[:engines]:
            processes.engine(node)
        sessions = [str(uuid.uuid4()) for _ in range(20)]
        firsts = [threading.Thread(target=api, args=(port, token, s, "My name is Ada")) for s in sessions]
        for thread in firsts:
            thread.start()
        for thread in firsts:
            thread.join()
        failures: list[object] = []
        threads = [threading.Thread(target=_follow_ups, args=(port, token, s, failures)) for s in sessions]
        with CpuMeter(processes.pids()) as meter:
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        spread = one(
            "SELECT string_agg(DISTINCT node, ',') FROM chat_turn WHERE session_id = ANY(%s)",
            [uuid.UUID(s) for s in sessions],
        )
        print(
            f"  {engines} engine(s): {100 / wall:.1f} turns a second, {meter.seconds / 100:.2f} CPU seconds a turn "
            f"(turns ran on engines {spread}; {len(failures)} failed)"
        )
        processes.close()


def pages(user: object, cookie: str, processes: Processes) -> None:
    chat = bench_data.make_chat(user, 10_000)
    url = chat.get_absolute_url()
    ports = [processes.web() for _ in range(4)]
    server = [bench_live.Server(host="127.0.0.1", port=port, cookie=cookie) for port in ports]
    bench_live.timed_gets(server[0], url, repeats=2)
    alone = bench_live.timed_gets(server[0], url, repeats=REPEATS * 2)
    four_on_one, _ = bench_live.concurrent_gets(server[0], url, people=4, repeats=REPEATS * 2)
    for each in server[1:]:
        bench_live.timed_gets(each, url, repeats=2)
    four_on_four: list[float] = []
    start = threading.Barrier(4)

    def person(each: bench_live.Server) -> None:
        start.wait()
        four_on_four.extend(bench_live.timed_gets(each, url, repeats=REPEATS * 2))

    threads = [threading.Thread(target=person, args=(each,)) for each in server]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("4 people opening a 10,000-turn chat at once (median of every request):")
    print(
        f"  alone {ms(alone):.0f} ms; 4 at once on 1 web process {ms(four_on_one):.0f} ms each "
        f"({ms(four_on_one) / ms(alone):.2f}x); on 4 web processes, one each, {ms(four_on_four):.0f} ms each "
        f"({ms(four_on_four) / ms(alone):.2f}x)"
    )
    processes.close()


def restart(token: str, processes: Processes) -> None:
    ports = [processes.web(), processes.web()]
    for node in ("a", "b"):
        processes.engine(node)
    sessions = [str(uuid.uuid4()) for _ in range(10)]
    before = one("SELECT coalesce(max(id), 0) FROM chat_turn")
    running = threading.Event()
    running.set()
    cut = []

    def chat(n: int, session: str) -> None:
        sent = 0
        while sent < 6:
            try:
                api(ports[n % 2], token, session, "slow 1")
                sent += 1
            except OSError:
                # The web process it talked to restarted (its turn, if saved, goes on), or is not up yet.
                cut.append(session)
                time.sleep(0.5)

    threads = [threading.Thread(target=chat, args=(n, s)) for n, s in enumerate(sessions)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    killed = processes.stop_webs()
    restarted = [processes.web(), processes.web()]
    ports[:] = restarted
    for thread in threads:
        thread.join()
    for session in sessions:
        wait_turns_over(session)
    statuses = dict(
        psycopg.connect(DB, autocommit=True)
        .execute("SELECT status, count(*) FROM chat_turn WHERE id > %s GROUP BY status", (before,))
        .fetchall()
    )
    print("Every web process restarted while 10 chats send follow-ups (2 web processes, 2 engines):")
    print(
        f"  turns interrupted: {statuses.get('interrupted', 0)}; done {statuses.get('done', 0)}; API calls cut or refused "
        f"by the restart {len(cut)} (sent again); taken back before they started (their caller hung up): "
        f"{statuses.get('stopped', 0)}; web processes that did not stop within 30 s of SIGTERM: {killed}"
    )
    processes.close()


def main() -> None:
    load = os.getloadavg()
    print(f"Machine: {os.cpu_count()} cores, load average {load[0]:.1f} at the start")
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench")
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    token = issue_token(user=user).key
    processes = Processes()
    cases = {
        "latency": lambda: latency(user, cookie, processes),
        "kill": lambda: kill(token, processes),
        "throughput": lambda: throughput(token, processes),
        "pages": lambda: pages(user, cookie, processes),
        "restart": lambda: restart(token, processes),
    }
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(cases), help=f"comma-separated, of: {', '.join(cases)}")
    try:
        for case in parser.parse_args().cases.split(","):
            cases[case]()
    finally:
        processes.close()
        print(f"Load average at the end: {os.getloadavg()[0]:.1f}")
        STACK.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
