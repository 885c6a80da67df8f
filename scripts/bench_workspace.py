#!/usr/bin/env python
"""Benchmark: the workspace's files and terminal, in one run, on this machine.

- the first level of a folder of 100,000 files listed as the tree lists it (one scandir through
  safefs, sorted, capped, and git's ignore check in the agents' sandbox); goal < 200 ms;
- a 5 MB text file opened as the page opens it (read through safefs, the first 2 MB shown);
- keystroke echo in a terminal (bash behind script(1) in bubblewrap, through the service's pty and
  output queue) against a local bash on a pty, taken in turns so that the load weighs on both;
  goal within 2x;
- 20 terminals open at once: RSS and PSS of all their processes.

Prints figures with the machine's load, never asserts. `.venv/bin/python scripts/bench_workspace.py`
(about a minute); everything it made is removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import pty
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TMP = Path(tempfile.mkdtemp(prefix="chat-bench-workspace-"))
os.environ.update(
    {
        "APP_DATA_DIR": str(TMP),
        "DATABASE_URL": f"sqlite:///{TMP}/bench.sqlite3",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "CLAUDE_WORKDIR": str(TMP / "work"),
        "CLAUDE_CONFIG_DIR": str(TMP / "claude"),
        "CLAUDE_MAX_TERMINALS_PER_MEMBER": "100",
    }
)

import django  # noqa: E402

django.setup()

from chat.models import Session  # noqa: E402
from devtools.memory import rss_and_pss_kb  # noqa: E402
from workspace.selectors import Place  # noqa: E402
from workspace.services import files, terminals, tree  # noqa: E402

RUNS = 5
KEYS = 40


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def place_at(folder: Path, name: str) -> Place:
    config = TMP / "claude" / name
    session = Session(id=uuid.uuid4(), owner_id=1, workdir=str(folder), config_dir=str(config))
    return Place(kind="chat", pk=name, title=name, base=folder, prefix="", project="", may_work=True, session=session)


def repository(folder: Path) -> None:
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / ".gitignore").write_text("*.log\n")


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"


def median_us(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:.0f} µs (min {min(samples) * 1e6:.0f}, max {max(samples) * 1e6:.0f})"


async def bench_listing() -> None:
    folder = TMP / "work" / "big"
    repository(folder)
    for n in range(100_000):
        (folder / f"file{n:06d}.txt").touch()
    place = place_at(folder, "big")
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        found = await tree.level(place=place, path="")
        times.append(time.perf_counter() - started)
    print(f"first level of 100,000 files ({len(found.items)} shown, {found.more:,} more): {median_ms(times)}")
    alone = []
    for _ in range(RUNS):
        started = time.perf_counter()
        files.listing(place=place, path="")
        alone.append(time.perf_counter() - started)
    print(f"  of which the listing alone (no git): {median_ms(alone)}")
    from asgiref.sync import sync_to_async

    print(f"  the tree's page over HTTP (its view and template): {await sync_to_async(_tree_page)(folder)}")
    shutil.rmtree(folder)


def _tree_page(folder: Path) -> str:
    """The tree view of the huge folder, as the page asks for it, for a chat working there."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from chat.services import chats

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("tree")
    session = chats.create_session(owner=user)
    Session.objects.filter(pk=session.pk).update(workdir=str(folder))
    client = Client()
    client.force_login(user)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        page = client.get(f"/workspace/chat/{session.pk}/files/tree/", HTTP_HOST="localhost")
        times.append(time.perf_counter() - started)
    assert page.status_code == 200 and b"99,502 more" in page.content.replace(b"99502", b"99,502"), page.status_code
    return median_ms(times)


def bench_open() -> None:
    folder = TMP / "work" / "text"
    repository(folder)
    line = "def function_number_{n}(argument):  return argument * {n}  # some text to fill the line\n"
    with open(folder / "big.py", "w") as out:
        n = 0
        while out.tell() < 5 * 1024 * 1024:
            out.write(line.format(n=n))
            n += 1
    place = place_at(folder, "text")
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        opened = files.open_file(place=place, path="big.py")
        times.append(time.perf_counter() - started)
    print(f"a 5 MB file opened (first {len(opened.text) / 1048576:.0f} MB shown, not highlighted): {median_ms(times)}")


async def _echo(write, queue: asyncio.Queue[bytes | None]) -> float:
    """Seconds from a keystroke to its echo."""
    while not queue.empty():
        queue.get_nowait()
    started = time.perf_counter()
    write(b"x")
    seen = b""
    while b"x" not in seen:
        seen += await queue.get() or b""
    return time.perf_counter() - started


async def _settle(queue: asyncio.Queue[bytes | None], prompt: bytes = b"$ ") -> None:
    seen = b""
    while prompt not in seen:
        seen += await asyncio.wait_for(queue.get(), 30) or b""


def _local_shell() -> tuple[subprocess.Popen[bytes], int, asyncio.Queue[bytes | None]]:
    master, slave = pty.openpty()
    env = {"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "HOME": str(TMP), "PS1": "$ "}
    proc = subprocess.Popen(
        ["/bin/bash", "--norc", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            queue.put_nowait(os.read(master, 65536))
        except OSError:
            asyncio.get_running_loop().remove_reader(master)

    asyncio.get_running_loop().add_reader(master, readable)
    return proc, master, queue


def _member_with_chat() -> tuple[Session, list[tuple[bytes, bytes]]]:
    """A member, a chat in their own folder, and their browser's websocket headers."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from chat.services import chats

    user = get_user_model().objects.create_user("bench")
    session = chats.create_session(owner=user)
    client = Client()
    client.force_login(user)
    cookie = "; ".join(f"{key}={value.value}" for key, value in client.cookies.items())
    # The 5 MB file again, as the page opens it (the view, its template, 2 MB of escaped text).
    big = TMP / "work" / "text" / "big.py"
    shutil.copy(big, Path(session.workdir) / "big.py")
    url = f"/workspace/chat/{session.pk}/files/?open=big.py"
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        page = client.get(url, HTTP_HOST="localhost")
        times.append(time.perf_counter() - started)
    assert page.status_code == 200, page.status_code
    print(f"the same file's page (HTTP, {len(page.content) / 1048576:.1f} MB of HTML): {median_ms(times)}")
    return session, [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())]


async def bench_socket(session: Session, headers: list[tuple[bytes, bytes]]) -> None:
    """Keystroke echo through the terminal's websocket consumer (the ASGI application, in this
    process; not Daphne's network part) against a local bash on a pty."""
    import json

    from channels.testing import WebsocketCommunicator

    from project.asgi import application_for
    from runtime import NoEngine

    socket = WebsocketCommunicator(application_for(NoEngine()), f"/ws/terminal/chat/{session.pk}/", headers=headers)
    connected, code = await socket.connect(timeout=30)
    assert connected, code
    seen = b""
    while b"$ " not in seen:
        seen += (await socket.receive_output(timeout=30)).get("bytes") or b""
    proc, master, local = _local_shell()
    await _settle(local)
    ours, theirs = [], []
    for _ in range(KEYS):
        started = time.perf_counter()
        await socket.send_to(text_data=json.dumps({"type": "input", "data": "x"}))
        seen = b""
        while b"x" not in seen:
            seen += (await socket.receive_output(timeout=30)).get("bytes") or b""
        ours.append(time.perf_counter() - started)
        theirs.append(await _echo(lambda data: os.write(master, data), local))
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"keystroke echo through the websocket consumer: {median_us(ours)}")
    print(f"keystroke echo, a local bash on a pty:         {median_us(theirs)}  -> {ratio:.1f}x")
    asyncio.get_running_loop().remove_reader(master)
    proc.kill()
    os.close(master)
    await socket.disconnect()
    terminals.end_all()


async def bench_terminal() -> None:
    folder = TMP / "work" / "term"
    repository(folder)
    terminal, queue = terminals.attach(place=place_at(folder, "term"), member_id=1)
    await _settle(queue)
    proc, master, local = _local_shell()
    await _settle(local)
    ours, theirs = [], []
    for _ in range(KEYS):
        ours.append(await _echo(terminal.write, queue))
        theirs.append(await _echo(lambda data: os.write(master, data), local))
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"keystroke echo, terminal in the sandbox (its pty): {median_us(ours)}")
    print(f"keystroke echo, a local bash on a pty:             {median_us(theirs)}  -> {ratio:.1f}x")
    asyncio.get_running_loop().remove_reader(master)
    proc.kill()
    os.close(master)
    terminals.end(terminal)


async def bench_many() -> None:
    opened = []
    for n in range(20):
        folder = TMP / "work" / f"many{n}"
        repository(folder)
        terminal, queue = terminals.attach(place=place_at(folder, f"many{n}"), member_id=1)
        opened.append((terminal, queue))
    for _terminal, queue in opened:
        await _settle(queue)
    from drivers.claude import proctree

    pids = [
        pid
        for terminal, _queue in opened
        for pid in [terminal.process.pid, *(p.pid for p in proctree.descendants(terminal.process.pid))]
    ]
    rss, pss = rss_and_pss_kb(pids)
    print(
        f"20 terminals open: {len(pids)} processes, RSS {rss / 1024:.0f} MB ({rss / 1024 / 20:.1f} MB each), "
        f"PSS {pss / 1024:.0f} MB ({pss / 1024 / 20:.1f} MB each)"
    )
    terminals.end_all()


async def main() -> None:
    print(f"load average at the start: {load()} ({os.cpu_count()} cores)")
    await bench_listing()
    bench_open()
    from asgiref.sync import sync_to_async

    session, headers = await sync_to_async(_member_with_chat)()
    await bench_terminal()
    await bench_socket(session, headers)
    await bench_many()
    print(f"load average at the end: {load()}")


try:
    (TMP / "staticfiles").mkdir()
    asyncio.run(main())
finally:
    terminals.end_all()
    shutil.rmtree(TMP, ignore_errors=True)
