"""Cluster mode end to end: two web processes and three engine processes on one machine, the real CLI.

Every process is real (Daphne, ``manage.py engine``) over PostgreSQL and Redis, as an admin starts
them; the tests talk to the web processes' API and read the database. Orderings and limits that need
no CLI are checked on the fake session factory instead, on both engines (test_cluster_same_*.py),
and the file slots across engines in tests/runtime/test_cluster_slots.py. The cluster
is shared by the module's tests (starting it costs tens of seconds); a test that stops an engine
starts it again.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Any

import pytest

from tests.cluster import Cluster, cluster_env, fresh_database
from tests.conftest import CLAUDE, claude_process_env
from tests.processes import running

pytestmark = [pytest.mark.real_cli]
NODES = ("a", "b", "c")


@pytest.fixture(scope="module")
def whole(stub_api, postgres_url, redis_url, tmp_path_factory):
    data = tmp_path_factory.mktemp("cluster")
    database = fresh_database(postgres_url)
    env = cluster_env(
        max_tasks=2,
        data=data,
        database_url=database,
        redis_url=redis_url,
        claude_env=claude_process_env(stub_api.url, data / "claude-config"),
        cli=CLAUDE,
    )
    cluster = Cluster(data=data, env=env, database_url=database)
    cluster.manage("migrate", "--noinput", "-v", "0")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(whole: Cluster) -> Cluster:
    """The module's cluster with both web processes and all three engines up."""
    for index in (0, 1):
        if index not in whole.webs:
            whole.start_web(index)
    for node in NODES:
        if node not in whole.engines:
            whole.start_engine(node)
    return whole


@pytest.fixture(scope="module")
def token(whole: Cluster) -> str:
    return whole.token_for("ada")


def turns_of(cluster: Cluster, session: str) -> list[dict[str, Any]]:
    names = ("id", "prompt", "status", "node", "pid", "error", "started_at", "finished_at")
    rows = cluster.rows(
        f"SELECT {', '.join(names)} FROM chat_turn WHERE session_id = %s ORDER BY id", uuid.UUID(session)
    )
    return [dict(zip(names, row, strict=True)) for row in rows]


def in_background(call: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call(*args, **kwargs))
        except Exception as exc:  # the web process it talks to may be stopped meanwhile
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def running_turn(cluster: Cluster, session: str) -> dict[str, Any]:
    # With its process: a turn is marked running as its engine takes it, and its CLI's pid follows
    # (a moment later, longer on a loaded machine).
    cluster.wait_for(
        "SELECT 1 FROM chat_turn WHERE session_id = %s AND status = 'running' AND pid IS NOT NULL", uuid.UUID(session)
    )
    return next(turn for turn in turns_of(cluster, session) if turn["status"] == "running")


def test_follow_ups_stay_on_the_warm_node_and_remember(cluster, token):
    session = str(uuid.uuid4())
    status, answer = cluster.chat(token, session, "my name is Ada", web=0)
    assert status == 200, answer
    status, answer = cluster.chat(token, session, "what is my name", web=1)
    assert status == 200, answer
    assert "Ada" in answer["answer"]
    first, second = turns_of(cluster, session)
    assert first["node"] in NODES
    # The follow-up went to the node holding the chat's warm process, and found it warm there.
    assert (second["node"], second["pid"]) == (first["node"], first["pid"])


def test_two_web_processes_sending_at_once_run_one_after_the_other(cluster, token):
    session = str(uuid.uuid4())
    assert cluster.chat(token, session, "my name is Ada")[0] == 200
    calls = [in_background(cluster.chat, token, session, "slow 1.5", web=web) for web in (0, 1)]
    for thread, _ in calls:
        thread.join(120)
    assert [result[0][0] for _, result in calls] == [200, 200], calls
    turns = turns_of(cluster, session)
    assert [turn["status"] for turn in turns] == ["done"] * 3
    # In the order they were saved, never two at once, all on one process: one transcript, not a fork.
    assert turns[1]["finished_at"] <= turns[2]["started_at"]
    assert len({turn["pid"] for turn in turns}) == 1
    assert "Ada" in cluster.chat(token, session, "what is my name")[1]["answer"]


def test_an_engine_killed_during_a_turn_interrupts_it_and_the_chat_goes_on_elsewhere(cluster, token):
    session = str(uuid.uuid4())
    assert cluster.chat(token, session, "my name is Ada")[0] == 200
    call, result = in_background(cluster.chat, token, session, "slow 60", web=1)
    victim = running_turn(cluster, session)["node"]
    cluster.kill_engine(victim)
    call.join(60)
    status, answer = result[0]
    assert status == 503, answer
    assert f"The engine running this turn (node {victim}) stopped answering" in answer["error"]
    assert "Send the message again" in answer["error"]
    status, answer = cluster.chat(token, session, "what is my name")
    assert status == 200, answer
    assert "Ada" in answer["answer"]
    assert turns_of(cluster, session)[-1]["node"] not in ("", victim)


def test_restarting_every_web_process_interrupts_no_turn_and_no_task(cluster, token):
    session = str(uuid.uuid4())
    assert cluster.chat(token, session, "my name is Ada")[0] == 200
    in_background(cluster.chat, token, session, "slow 6", web=0)
    running_turn(cluster, session)
    cluster.send_from_page("ada", session, "what is my name")  # queued behind the running one
    status, task = cluster.call("POST", "/api/tasks", token, {"prompt": "slow 6", "title": "Slow task"}, web=1)
    assert status in (200, 201), task
    cluster.wait_for("SELECT 1 FROM chat_task WHERE id = %s AND status = 'running'", task["id"])
    for web in (0, 1):
        cluster.stop_web(web)
    for web in (0, 1):
        cluster.start_web(web)
    cluster.wait_for("SELECT status FROM chat_task WHERE id = %s AND status <> 'running'", task["id"], timeout=120)
    cluster.wait_for(
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM chat_turn WHERE session_id = %s AND status IN "
        "('queued', 'waiting', 'running'))",
        uuid.UUID(session),
        timeout=120,
    )
    assert [turn["status"] for turn in turns_of(cluster, session)] == ["done", "done", "done"]
    assert cluster.one("SELECT status FROM chat_task WHERE id = %s", task["id"]) == "completed"
    answers = cluster.rows(
        "SELECT e.text FROM chat_event e JOIN chat_turn t ON t.id = e.turn_id WHERE t.session_id = %s "
        "AND e.kind = 'text' ORDER BY e.id",
        uuid.UUID(session),
    )
    assert "Ada" in answers[-1][0]


def test_a_drained_engine_hands_its_warm_chats_on_with_their_memory(cluster, token):
    session = str(uuid.uuid4())
    assert cluster.chat(token, session, "my name is Bob")[0] == 200
    home = turns_of(cluster, session)[0]["node"]
    out = cluster.manage("engine", "--drain", env={"CLAUDE_NODE_ID": home})
    assert f"Node {home} has drained" in out
    assert cluster.engines.pop(home).wait(30) == 0
    status, answer = cluster.chat(token, session, "what is my name")
    assert status == 200, answer
    assert "Bob" in answer["answer"]
    assert turns_of(cluster, session)[-1]["node"] not in ("", home)


def test_queued_messages_survive_a_restart_of_everything(cluster, token):
    session = str(uuid.uuid4())
    assert cluster.chat(token, session, "my name is Cy")[0] == 200
    cluster.send_from_page("ada", session, "slow 25")
    running_turn(cluster, session)
    cluster.send_from_page("ada", session, "what is my name")
    assert [turn["status"] for turn in turns_of(cluster, session)] == ["done", "running", "queued"]
    # Every engine at once (a deploy): each drains, the running turn ends, the queued one waits.
    engines = [cluster.engines.pop(node) for node in NODES]
    for engine in engines:
        engine.send_signal(signal.SIGTERM)
    for web in (0, 1):
        cluster.stop_web(web)
    assert [engine.wait(120) for engine in engines] == [0, 0, 0]
    # The queued one waits, unless an engine took it before its own signal was handled (a loaded
    # machine can run the first drain before another engine sees its SIGTERM): then it ran to its end.
    first, second, queued = (turn["status"] for turn in turns_of(cluster, session))
    assert (first, second) == ("done", "done") and queued in ("queued", "done"), queued
    for node in NODES:
        cluster.start_engine(node)
    cluster.wait_for(
        "SELECT 1 FROM chat_turn WHERE session_id = %s AND prompt = 'what is my name' AND status = 'done'",
        uuid.UUID(session),
    )


def test_an_engine_that_does_not_see_the_shared_storage_is_refused(cluster, tmp_path):
    elsewhere = tmp_path / "not-shared"
    elsewhere.mkdir()
    out = cluster.manage("engine", env={"CLAUDE_NODE_ID": "d", "CLAUDE_CONFIG_DIR": str(elsewhere)}, check=False)
    assert "This engine does not see the cluster's shared storage" in out
    assert "Mount the storage every node shares" in out


def test_the_pool_status_adds_up_the_nodes(cluster, token):
    status, pool = cluster.call("GET", "/api/claude-code/pool/status", token)
    assert status == 200, pool
    assert pool["limit"] == 3 * 10  # CLAUDE_MAX_CONCURRENT on each of the three nodes


def test_a_frozen_engine_ends_its_own_cli_before_its_chat_moves(cluster, token):
    session = str(uuid.uuid4())
    assert cluster.chat(token, session, "my name is Ada")[0] == 200
    call, result = in_background(cluster.chat, token, session, "slow 60", web=1)
    turn = running_turn(cluster, session)
    victim, cli = turn["node"], turn["pid"]
    assert running(cli)
    cluster.kill_engine(victim, signal.SIGSTOP)  # a partition: the engine can do nothing, its CLI runs on
    # Its fence ends the CLI first; only then does the janitor of another node end the turn.
    while cluster.one("SELECT status FROM chat_turn WHERE id = %s", turn["id"]) == "running":
        time.sleep(0.05)
    assert not running(cli)
    call.join(60)
    assert result[0][0] == 503, result
    status, answer = cluster.chat(token, session, "what is my name")
    assert status == 200, answer
    assert "Ada" in answer["answer"]
    assert turns_of(cluster, session)[-1]["node"] != victim
    cluster.engines.pop(victim).wait(30)  # the fence ended it too


def test_at_most_max_tasks_run_at_once_across_the_engines(cluster, token):
    made = [
        cluster.call("POST", "/api/tasks", token, {"prompt": "slow 2", "title": f"Task {n}"})[1]["id"] for n in range(5)
    ]
    most, nodes = 0, set()
    while True:
        rows = cluster.rows("SELECT status, node FROM chat_task WHERE id = ANY(%s)", made)
        most = max(most, sum(1 for status, _ in rows if status == "running"))
        nodes |= {node for status, node in rows if status == "running"}
        if all(status not in ("queued", "running") for status, _ in rows):
            break
        time.sleep(0.05)
    assert most == 2  # CLAUDE_MAX_TASKS of this cluster, counted over all three engines
    assert [status for status, _ in rows] == ["completed"] * 5
