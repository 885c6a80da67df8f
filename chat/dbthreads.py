"""Database work in small pools of threads of our own, each keeping its database connection a while.

Opening a connection (SQLite registers Django's functions on it, PostgreSQL logs in) costs more than
most of what a socket asks, and more than a turn's first read: a turn's engine worker runs in a new
thread whenever a chat's queue starts again, so the read that hands it the turn opened a connection
on every follow-up, on the message's way to the CLI. The pools here keep theirs (see
:data:`KEEP_CONNECTION_SECONDS`), whatever ``CONN_MAX_AGE`` makes a request's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import close_old_connections, connections

# However short CONN_MAX_AGE makes a request's connection, a pool's thread keeps its own this long.
KEEP_CONNECTION_SECONDS = 300.0


class _InPool(SyncToAsync):  # type: ignore[type-arg]
    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        # As around a request: a connection that failed, was left in a transaction or is too old goes.
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            for conn in connections.all(initialized_only=True):
                if (
                    conn.connection is not None
                    and conn.close_at is not None
                    and getattr(conn, "kept_for_sockets", None) is not conn.connection
                ):
                    conn.close_at = max(conn.close_at, time.monotonic() + KEEP_CONNECTION_SECONDS)
                    conn.kept_for_sockets = conn.connection  # type: ignore[attr-defined]
            close_old_connections()


def threads(*, count: int, name: str) -> ThreadPoolExecutor:
    """A pool of ``count`` threads named ``name``, for :func:`run_in`."""
    return ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)


def run_in[**P, R](pool: ThreadPoolExecutor, func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``func`` as a coroutine run in ``pool``'s threads, which keep their connections."""
    return _InPool(func, thread_sensitive=False, executor=pool)
