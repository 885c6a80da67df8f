"""An engine process's life: recover its own leftovers, take jobs, beat, clean up after dead nodes, drain.

No Django imports. :func:`serve` runs until ``stop`` is set (SIGTERM, ``engine --drain``), then drains:
it takes no more jobs, gives its queue and its sessions to the other nodes, lets running turns end
within the grace (then interrupts them), hands back turns it took but never started, and closes its
warm processes (each flushes its transcript, which the shared storage carries to the next node).

While it serves:

- a heartbeat keeps its row fresh (its figures for the pool's status) and procrastinate's worker
  beats too; after each beat that reached the database it tells its fence (a watchdog process of its
  own, :mod:`runtime.cluster.fence`), which ends the node's CLI processes and the engine if no beat
  comes for half of ``dead_after`` (the database out of reach, or the engine frozen): the janitor of
  another node waits ``dead_after`` before it gives this node's sessions to others, so two nodes
  never run one transcript;
- one node at a time is the janitor (a PostgreSQL advisory lock held on a connection of its own:
  released when that node dies): it ends the turns and task runs of jobs whose worker stopped
  beating as interrupted (never run again: their tools may have run), moves a dead node's queued
  jobs to the shared queue and clears its placements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from pathlib import Path
from typing import LiteralString

import psycopg
from procrastinate import jobs as pq_jobs
from procrastinate import worker as pq_worker

from .engine import ClusterEngine
from .hooks import SHARED_QUEUE, TASK_JOB, TURN_JOB, node_queue
from .jobs import register

log = logging.getLogger(__name__)

JANITOR_LOCK = 0x636C6A61  # "clja": one janitor in the cluster

# Installed by every engine as it starts (idempotent): PostgreSQL tells waiters instead of their polling.
_TRIGGERS: LiteralString = """
CREATE OR REPLACE FUNCTION chat_turn_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('claude_turn', NEW.id::text);
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER chat_turn_status_notify AFTER UPDATE OF status ON chat_turn
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION chat_turn_notify();
-- A job that ends frees its lock: the next job of that lock (a session's next turn, queued while
-- this one ran) is told to the workers at once, not at their next poll.
CREATE OR REPLACE FUNCTION claude_lock_freed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_job procrastinate_jobs;
    payload TEXT;
BEGIN
    SELECT * INTO next_job FROM procrastinate_jobs
        WHERE lock = NEW.lock AND status = 'todo' ORDER BY priority DESC, id LIMIT 1;
    IF FOUND THEN
        payload := json_build_object('type', 'job_inserted', 'job_id', next_job.id)::text;
        PERFORM pg_notify('procrastinate_queue_v1#' || next_job.queue_name, payload);
        PERFORM pg_notify('procrastinate_any_queue_v1', payload);
    END IF;
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER claude_lock_freed AFTER UPDATE OF status ON procrastinate_jobs
    FOR EACH ROW WHEN (OLD.status = 'doing' AND NEW.status <> 'doing' AND NEW.lock IS NOT NULL)
    EXECUTE FUNCTION claude_lock_freed();
"""
_MOVE_QUEUE: LiteralString = (
    "WITH moved AS (UPDATE procrastinate_jobs SET queue_name = %(shared)s "
    "WHERE queue_name = %(queue)s AND status = 'todo' RETURNING id) SELECT count(*) AS n FROM moved"
)
_NUDGE: LiteralString = (
    "SELECT pg_notify('procrastinate_queue_v1#' || %(shared)s, %(payload)s), "
    "pg_notify('procrastinate_any_queue_v1', %(payload)s)"
)
_WORKER_JOBS: LiteralString = "SELECT id FROM procrastinate_jobs WHERE worker_id = %(worker)s AND status = 'doing'"


class NodeRefused(Exception):
    """This engine must not join the cluster; the text says why and what to do."""


class Fence:
    """The node's watchdog process (:mod:`runtime.cluster.fence`), told after each heartbeat."""

    def __init__(self, engine: ClusterEngine, *, after: float) -> None:
        self.engine = engine
        self.after = after
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cluster.fence", str(self.after)],
            stdin=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.beat()

    def beat(self) -> None:
        node = self.engine.node
        if self._process is None or self._process.stdin is None or node is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.write((" ".join(map(str, node.pids())) + "\n").encode())
            self._process.stdin.flush()

    def close(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)


async def serve(engine: ClusterEngine, *, stop: asyncio.Event, concurrency: int) -> None:
    """Run ``engine``'s node until ``stop`` is set, then drain it. Raises NodeRefused at the start."""
    hooks, limits, node_id = engine.hooks, engine.limits, engine.node_id
    assert engine.node is not None
    register(engine)
    if problem := await hooks.check_storage():
        raise NodeRefused(problem)
    for line in (done := await hooks.recover_node(node=node_id))[0]:
        log.warning("%s", line)
    await hooks.join(node_id)
    await engine.start()
    await engine.app.connector.execute_query_async(_TRIGGERS)
    if done[1] is not None:
        await _finish_worker(engine, done[1])
    worker = pq_worker.Worker(
        app=engine.app,
        queues=[node_queue(node_id), SHARED_QUEUE],
        name=node_id,
        concurrency=concurrency,
        install_signal_handlers=False,
        update_heartbeat_interval=limits.heartbeat,
        stalled_worker_timeout=limits.dead_after,
        shutdown_graceful_timeout=limits.drain_grace,
        abort_job_polling_interval=max(1.0, limits.heartbeat),
        fetch_job_polling_interval=max(1.0, limits.heartbeat),
        delete_jobs=pq_jobs.DeleteJobCondition.SUCCESSFUL,
    )
    fence = Fence(engine, after=limits.dead_after / 2)
    fence.start()
    working = asyncio.create_task(worker.run(), name="claude-worker")  # type: ignore[no-untyped-call]
    beating = asyncio.create_task(_beat(engine, worker, fence, stop), name="claude-heartbeat")
    janitor = asyncio.create_task(_janitor(engine), name="claude-janitor")
    engine.kick_tasks()  # queued tasks start without waiting for a page
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopping, working}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        log.warning("node %s drains: it takes no more turns", node_id)
        engine.draining = True
        janitor.cancel()
        with contextlib.suppress(Exception):
            await hooks.leave(node_id)
            await _move_queue(engine, node_id)
        worker.stop()  # type: ignore[no-untyped-call]
        await asyncio.gather(working, return_exceptions=True)
        with contextlib.suppress(Exception):
            await _move_queue(engine, node_id)
        await asyncio.gather(janitor, return_exceptions=True)
        await engine.shutdown()  # warm processes closed: their transcripts flushed for the next node
        beating.cancel()  # (it beat on while the node drained: the fence waits for its beats)
        await asyncio.gather(beating, return_exceptions=True)
        fence.close()
        with contextlib.suppress(Exception):
            await hooks.node_gone(node_id)
        log.warning("node %s has drained", node_id)


async def _beat(engine: ClusterEngine, worker: pq_worker.Worker, fence: Fence, stop: asyncio.Event) -> None:
    assert engine.node is not None
    while True:
        try:
            asked_to_drain = await engine.hooks.beat(
                node=engine.node_id,
                status=engine.node.status(),
                warm=len(engine.node.warm),
                draining=engine.draining,
                worker=worker.worker_id,
            )
            fence.beat()
            if asked_to_drain and not engine.draining:
                stop.set()  # `engine --drain` asked
        except Exception as exc:
            log.warning("node %s could not beat (%s)", engine.node_id, exc)
        await asyncio.sleep(engine.limits.heartbeat)


async def _janitor(engine: ClusterEngine) -> None:
    """Hold the janitor's lock when no other node does, and clean up while holding it."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(**engine.watch.conninfo, autocommit=True) as conn:
                while True:
                    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (JANITOR_LOCK,))).fetchone()
                    if row and row[0]:
                        break
                    await asyncio.sleep(engine.limits.heartbeat)
                log.info("node %s is the janitor", engine.node_id)
                while True:
                    await conn.execute("SELECT 1")  # the lock lives as long as this connection
                    await clean_up(engine)
                    await asyncio.sleep(engine.limits.heartbeat)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("the janitor failed (%s); trying again", exc)
            await asyncio.sleep(engine.limits.heartbeat)


async def clean_up(engine: ClusterEngine) -> None:
    """One round of the janitor: jobs of workers that stopped beating, and dead nodes."""
    manager = engine.app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=engine.limits.dead_after))
    if stalled:
        turns = [int(str(job.task_kwargs["turn"])) for job in stalled if job.task_name == TURN_JOB]
        tasks = [int(str(job.task_kwargs["task"])) for job in stalled if job.task_name == TASK_JOB]
        await engine.hooks.interrupted(turns=turns, tasks=tasks)
        for job in stalled:
            assert job.id is not None
            await manager.finish_job_by_id_async(job.id, status=pq_jobs.Status.FAILED, delete_job=False)
        log.warning(
            "ended %d job(s) of engines that stopped answering (turns %s, tasks %s)", len(stalled), turns, tasks
        )
        if tasks:
            await engine.schedule()
    for node in await engine.hooks.dead_nodes(dead_after=engine.limits.dead_after):
        moved = await _move_queue(engine, node)
        await engine.hooks.node_gone(node)
        log.warning("node %s stopped answering: %d queued turn(s) moved to the shared queue", node, moved)
    await manager.prune_stalled_workers(engine.limits.dead_after)


async def _move_queue(engine: ClusterEngine, node: str) -> int:
    rows = await engine.app.connector.execute_query_all_async(_MOVE_QUEUE, shared=SHARED_QUEUE, queue=node_queue(node))
    moved = int(rows[0]["n"]) if rows else 0
    if moved:
        await engine.app.connector.execute_query_all_async(
            _NUDGE, shared=SHARED_QUEUE, payload='{"type": "job_inserted", "job_id": 0}'
        )
    return moved


async def _finish_worker(engine: ClusterEngine, worker: int) -> None:
    """The jobs this node's earlier run left running (its turns were just recovered): ended, their locks free."""
    rows = await engine.app.connector.execute_query_all_async(_WORKER_JOBS, worker=worker)
    for row in rows:
        await engine.app.job_manager.finish_job_by_id_async(row["id"], status=pq_jobs.Status.FAILED, delete_job=False)
    with contextlib.suppress(Exception):
        await engine.app.job_manager.unregister_worker(worker)
