"""Cluster mode end to end: web processes and engine processes on one machine, the real CLI.

Each test here starts real processes (Daphne, ``manage.py engine``) over PostgreSQL and Redis, as an
admin would; orderings and limits that need no CLI are checked on the fake session factory instead
(tests/runtime/test_cluster.py).
"""

from __future__ import annotations

import uuid

import pytest

from tests.cluster import Cluster, cluster_env, fresh_database
from tests.conftest import CLAUDE, claude_process_env

pytestmark = [pytest.mark.real_cli]


@pytest.fixture
def cluster(stub_api, postgres_url, redis_url, tmp_path):
    data = tmp_path / "cluster"
    database = fresh_database(postgres_url)
    env = cluster_env(
        data=data,
        database_url=database,
        redis_url=redis_url,
        claude_env=claude_process_env(stub_api.url, data / "claude-config"),
        cli=CLAUDE,
    )
    running = Cluster(data=data, env=env, database_url=database)
    running.manage("migrate", "--noinput", "-v", "0")
    try:
        yield running
    finally:
        running.close()


def node_of(cluster: Cluster, session: str, message: str) -> str:
    return cluster.one(
        "SELECT node FROM chat_turn WHERE session_id = %s AND prompt = %s ORDER BY id DESC LIMIT 1",
        uuid.UUID(session),
        message,
    )


def test_follow_ups_stay_on_the_warm_node_and_remember(cluster):
    cluster.start_web(0)
    cluster.start_web(1)
    cluster.start_engine("a")
    cluster.start_engine("b")
    token = cluster.token_for("ada")
    session = str(uuid.uuid4())
    status, answer = cluster.chat(token, session, "my name is Ada", web=0)
    assert status == 200, answer
    first = node_of(cluster, session, "my name is Ada")
    assert first in ("a", "b")
    status, answer = cluster.chat(token, session, "what is my name", web=1)
    assert status == 200, answer
    assert "Ada" in answer["answer"]
    assert node_of(cluster, session, "what is my name") == first
    # One process ran both turns: the second found the first's warm.
    assert cluster.one("SELECT count(DISTINCT pid) FROM chat_turn WHERE session_id = %s", uuid.UUID(session)) == 1
