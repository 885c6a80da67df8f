"""The benchmark's data: long chats, many idle chats with transcripts on disk, written in bulk.

Rows go in through the models (so the search index's triggers see them as they see the app's
own writes); a chat's events are copied from its turns in one INSERT … SELECT per kind.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.utils import timezone

from chat.models import Event, Session, Turn
from chat.services.chats import create_session

# One turn in this many asks about marmalade: a word that few messages have.
RARE_EVERY = 1000
ANSWER = "An answer of a few words. " * 20
TOOL_INPUT = json.dumps({"input": {"file_path": "a.txt", "content": "x"}})


def make_chat(owner, turns: int, *, title: str | None = None) -> Session:
    """A chat of ``turns`` finished turns, each with a tool call, its result and an answer."""
    session = create_session(owner=owner, title=title or f"{turns} turns")
    start = timezone.now() - timedelta(seconds=turns)
    for first in range(0, turns, 5000):
        Turn.objects.bulk_create(
            [
                Turn(
                    session=session,
                    author=owner,
                    prompt=_prompt(n),
                    status=Turn.Status.DONE,
                    duration_ms=1200,
                    input_tokens=900,
                    output_tokens=120,
                    cost_usd=0.01,
                    created_at=start + timedelta(seconds=n),
                )
                for n in range(first, min(turns, first + 5000))
            ],
            batch_size=1000,
        )
    session_id = Session._meta.pk.get_db_prep_value(session.id, connection)
    with connection.cursor() as cursor:
        for kind, name, text, data in (
            (Event.Kind.TOOL_USE, "Write", "", TOOL_INPUT),
            (Event.Kind.TOOL_RESULT, "", "File created successfully", "{}"),
            (Event.Kind.TEXT, "", ANSWER, "{}"),
        ):
            cursor.execute(
                "INSERT INTO chat_event (turn_id, kind, name, text, data, is_error, complete, created_at) "
                "SELECT id, %s, %s, %s, %s, %s, %s, created_at FROM chat_turn WHERE session_id = %s ORDER BY id",
                [kind, name, text, data, False, True, session_id],
            )
    return session


def _prompt(n: int) -> str:
    words = f"question {n} " * 5
    return words + "about marmalade" if n % RARE_EVERY == RARE_EVERY // 2 else words


def _transcript_text(size: int, *, seed: int) -> bytes:
    """JSON lines like a CLI transcript's, of varied words (so they pack like real ones)."""
    rng = random.Random(seed)
    vocabulary = (
        "the file function returns value error test python import data class self path line print "
        "response request server client config update remove create read write list dict"
    ).split()
    lines, total = [], 0
    while total < size:
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(20, 120)))
        line = (
            json.dumps(
                {
                    "type": rng.choice(["user", "assistant"]),
                    "uuid": f"{rng.getrandbits(128):032x}",
                    "parentUuid": f"{rng.getrandbits(128):032x}",
                    "timestamp": "2026-01-05T08:48:14.231Z",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                }
            )
            + "\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def idle_chats(owner, *, count: int, size: int, folder: Path) -> int:
    """``count`` chats idle for two days, each with a transcript of ``size`` bytes on disk where the
    CLI keeps it (``<config folder>/projects/<encoded cwd>/<uuid>.jsonl``); total bytes."""
    body = _transcript_text(size, seed=count)
    folder.mkdir(parents=True, exist_ok=True)
    idle_since = timezone.now() - timedelta(days=2)
    chats = []
    for n in range(count):
        chat = Session(
            owner=owner, title=f"Idle {n}", workdir=str(folder), last_activity_at=idle_since, created_at=idle_since
        )
        chat.config_dir = str(folder / str(chat.id))
        transcript = Path(chat.config_dir) / "projects" / "-bench-work" / f"{chat.id}.jsonl"
        transcript.parent.mkdir(parents=True)
        transcript.write_bytes(f'{{"n": {n}}}\n'.encode() + body)
        chat.transcript_path = str(transcript)
        chats.append(chat)
    Session.objects.bulk_create(chats, batch_size=1000)
    return sum(Path(c.transcript_path).stat().st_size for c in chats)
