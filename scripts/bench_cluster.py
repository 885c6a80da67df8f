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
import os
import signal
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

import bench_cluster_parts as parts  # noqa: E402
import bench_data  # noqa: E402
import bench_live  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from chat.services import chats  # noqa: E402
from chat.services.tokens import issue_token  # noqa: E402


def one(query: str, *args: object) -> object:
    return parts.one(DB, query, *args)


def wait_turns_over(session: str) -> None:
    parts.wait_turns_over(DB, session)


# -- the cases ------------------------------------------------------------------------------------
def latency(user: User, cookie: str, processes: parts.Processes) -> None:
    local_port = processes.web(CLAUDE_ENGINE="local", CLAUDE_NODE_ID="local")
    cluster_port = processes.web()
    processes.engine("a")
    local, cluster = [], []
    for _ in range(REPEATS):
        local.append(asyncio.run(parts.follow_up_ms(local_port, cookie, chats.create_session(owner=user), DB)))
        cluster.append(asyncio.run(parts.follow_up_ms(cluster_port, cookie, chats.create_session(owner=user), DB)))
    print(f"Follow-up, websocket send -> first frame with the answer (median of {REPEATS}, taken in turns):")
    print(
        f"  local {parts.ms(local):.0f} ms; cluster (a web process, an engine) {parts.ms(cluster):.0f} ms: "
        f"{parts.ms(cluster) - parts.ms(local):+.0f} ms ({parts.ms(cluster) / parts.ms(local):.2f}x)"
    )
    processes.close()


def kill(token: str, processes: parts.Processes) -> None:
    port = processes.web()
    for node in ("a", "b"):
        processes.engine(node)
    moved, ended = [], []
    for _ in range(3):
        session = str(uuid.uuid4())
        parts.api(port, token, session, "My name is Ada")
        threading.Thread(target=parts.api, args=(port, token, session, "slow 60"), daemon=True).start()
        while not (
            victim := one("SELECT node FROM chat_turn WHERE session_id = %s AND status = 'running'", uuid.UUID(session))
        ):
            time.sleep(0.02)
        nxt: list[object] = []
        threading.Thread(
            target=parts.send_into, args=(nxt, port, token, session, "What is my name?"), daemon=True
        ).start()
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


def throughput(token: str, processes: parts.Processes) -> None:
    print("20 chats x 5 follow-ups at once through the API (one web process):")
    for engines in (1, 2, 3):
        port = processes.web()
        for node in "abc"[:engines]:
            processes.engine(node)
        sessions = [str(uuid.uuid4()) for _ in range(20)]
        firsts = [threading.Thread(target=parts.api, args=(port, token, s, "My name is Ada")) for s in sessions]
        for thread in firsts:
            thread.start()
        for thread in firsts:
            thread.join()
        failures: list[object] = []
        threads = [threading.Thread(target=parts.follow_ups, args=(port, token, s, failures)) for s in sessions]
        with parts.CpuMeter(processes.pids()) as meter:
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


def pages(user: object, cookie: str, processes: parts.Processes) -> None:
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
        f"  alone {parts.ms(alone):.0f} ms; 4 at once on 1 web process {parts.ms(four_on_one):.0f} ms each "
        f"({parts.ms(four_on_one) / parts.ms(alone):.2f}x); on 4 web processes, one each, {parts.ms(four_on_four):.0f} ms each "
        f"({parts.ms(four_on_four) / parts.ms(alone):.2f}x)"
    )
    processes.close()


def restart(token: str, processes: parts.Processes) -> None:
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
                parts.api(ports[n % 2], token, session, "slow 1")
                sent += 1
            except OSError:
                # The web process it talked to restarted (its turn, if saved, goes on), or is not up yet.
                cut.append(session)
                time.sleep(0.5)

    threads = [threading.Thread(target=chat, args=(n, s)) for n, s in enumerate(sessions)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    killed, took = processes.stop_webs()
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
        f"{statuses.get('stopped', 0)}; web processes that did not exit within 30 s of SIGTERM (killed): {killed}, "
        f"the last exited after {took:.1f} s"
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
    processes = parts.Processes(TMP, DB)
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
