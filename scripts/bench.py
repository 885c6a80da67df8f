#!/usr/bin/env python
"""Benchmark: how opening a chat scales with its length, and the chat list with many chats.

Prints figures, never asserts: these machines are noisy, so compare the ratios measured in one
run. Uses a throw-away SQLite database; run with `.venv/bin/python scripts/bench.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = tempfile.mkdtemp(prefix="chat-bench-")
os.makedirs(f"{_tmp}/staticfiles")
os.environ.update({"APP_DATA_DIR": _tmp, "DATABASE_URL": f"sqlite:///{_tmp}/bench.sqlite3",
                   "DJANGO_SETTINGS_MODULE": "project.settings", "DJANGO_ALLOWED_HOSTS": "testserver"})

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from chat.models import Event, Session, Turn  # noqa: E402
from chat.services.chats import create_session  # noqa: E402

REPEATS = 7


def make_chat(owner, turns: int) -> Session:
    session = create_session(owner=owner, title=f"{turns} turns")
    batch = [Turn(session=session, author=owner, prompt=f"question {i} " * 5, status=Turn.Status.DONE,
                  duration_ms=1200, input_tokens=900, output_tokens=120, cost_usd=0.01) for i in range(turns)]
    Turn.objects.bulk_create(batch, batch_size=500)
    saved = Turn.objects.filter(session=session)
    events = []
    for turn in saved:
        events += [
            Event(turn=turn, kind=Event.Kind.TOOL_USE, name="Write", data={"input": {"file_path": "a.txt", "content": "x"}}),
            Event(turn=turn, kind=Event.Kind.TOOL_RESULT, text="File created successfully"),
            Event(turn=turn, kind=Event.Kind.TEXT, text="An answer of a few words. " * 20),
        ]
    Event.objects.bulk_create(events, batch_size=1000)
    return session


def timed_get(client: Client, url: str) -> tuple[float, int]:
    samples = []
    size = 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.content)
    return statistics.median(samples), size


def main() -> None:
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password="bench")
    client = Client()
    client.force_login(user)

    print(f"Opening a chat (median of {REPEATS} GETs, {Turn.__name__}s with 3 events each)")
    base = None
    for turns in (10, 1000, 5000):
        session = make_chat(user, turns)
        seconds, size = timed_get(client, session.get_absolute_url())
        base = base or seconds
        print(f"  {turns:>5} turns: {seconds * 1000:7.1f} ms, {size / 1024:7.1f} KiB page, {seconds / base:5.2f}x the 10-turn chat")

    for _ in range(300):
        create_session(owner=user, title="filler")
    seconds, size = timed_get(client, "/")
    print(f"Chat list with {Session.objects.count()} chats: {seconds * 1000:.1f} ms, {size / 1024:.1f} KiB page")


if __name__ == "__main__":
    main()
