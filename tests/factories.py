"""Factory functions for tests: keyword-only, real models, real database."""

from __future__ import annotations

import itertools
from pathlib import Path

from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Session
from chat.projects import OWN, Project
from chat.services import chats

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(*, username: str | None = None, password: str = PASSWORD, is_staff: bool = False):
    User = get_user_model()
    user = User.objects.create_user(username or f"user{next(_seq)}", password=password)
    if is_staff:
        user.is_staff = user.is_superuser = True
        user.save()
    return user


def make_session(*, owner, title: str = "", workdir: Path | None = None, session_id=None) -> Session:
    """A chat in the owner's own folder, or (with ``workdir``) in that folder as if it were theirs."""
    project = Project(key=OWN, path=workdir) if workdir is not None else None
    return chats.create_session(owner=owner, title=title, project=project, session_id=session_id)


def logged_in_client(*, user, engine=None) -> Client:
    """A browser logged in as ``user``; its requests carry ``engine`` as the server's carry the one
    the composition root built (views read ``request.engine``)."""
    client = Client(**({"engine": engine} if engine is not None else {}))
    client.force_login(user)
    return client


def ws_headers(*, client: Client | None = None, origin: str = "http://localhost") -> list[tuple[bytes, bytes]]:
    """Headers of a browser's websocket handshake: Origin, Host and the login cookie."""
    headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
    if client is not None:
        cookie = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())
        headers.append((b"cookie", cookie.encode()))
    return headers


async def receive_until(communicator: WebsocketCommunicator, needle: str, *, timeout: float = 30) -> str:
    """What a websocket sent, frame after frame, up to the first frame holding ``needle``."""
    seen = ""
    while needle not in seen:
        seen += await communicator.receive_from(timeout=timeout)
    return seen
