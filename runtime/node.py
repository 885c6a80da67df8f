"""The node runtime: what one machine does with CLI processes. It runs a whole turn and says how it ended.

No Django imports. A node owns its process slots (``CLAUDE_MAX_CONCURRENT``, shared fairly between
members), its warm processes (:mod:`runtime.warm`), the file-operation slots it reaches
(:class:`FileSlots`: here a local limit; a cluster-wide one can stand in) and its agents' egress
proxy. Processes come from a factory handed in by the composition root (real
:class:`drivers.claude.LiveSession` s in the server, scripted stand-ins in tests).

:meth:`NodeRuntime.run_turn` takes the session's warm process (or starts one), changes its model or
permission mode if the turn asks for others, runs the turn, and keeps the process warm or closes it.
A Stop of the session (:meth:`NodeRuntime.stop`) and the timeout interrupt the turn through the
protocol; a process that does not stop within the grace is ended with its tree. The node knows why
a turn was ended (a Stop, or the node shutting down): nobody passes that down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from drivers import claude
from drivers.claude import LiveSpec, Prompt, SessionFailed, TurnHandler
from drivers.egress import EgressProxy

from .outcomes import Done, Failed, ShutDown, Stopped, StopReason, TimedOut, TurnOutcome
from .pool import Pool, PoolStatus
from .warm import WarmPool

log = logging.getLogger(__name__)

# How long an interrupted turn may take to end by itself before its process is ended.
STOP_GRACE_SECONDS = 5.0


class Process(Protocol):
    """A CLI process of one session, kept for many turns (see :class:`drivers.claude.LiveSession`)."""

    pid: int | None
    model: str | None
    mode: str

    @property
    def alive(self) -> bool: ...

    def turn(self, prompt: Prompt, handler: TurnHandler) -> AsyncIterator[claude.Event]: ...

    async def interrupt(self) -> bool: ...

    async def set_model(self, model: str | None) -> None: ...

    async def set_permission_mode(self, mode: str) -> None: ...

    async def close(self) -> None: ...


# Starts the process of a spec (connected, ready for a turn); raises SessionFailed, CliNotFound, WorkdirMissing.
ProcessFactory = Callable[[LiveSpec], Awaitable[Process]]


class FileSlots(Protocol):
    """Write/Edit/MultiEdit/NotebookEdit calls running at once (``CLAUDE_MAX_FILE_OPERATIONS``): a
    turn's file tool takes a slot before it runs and gives it back after. Waiters are served in turn
    per owner, in order within one (see :class:`runtime.pool.Pool`, the local implementation)."""

    async def acquire(self, *, owner: Hashable = None, on_wait: Callable[[], object] | None = None) -> None: ...

    def release(self, *, owner: Hashable = None) -> None: ...

    def status(self) -> PoolStatus: ...


@dataclass(eq=False)
class _Running:
    """A turn of a session that holds a process slot here, and whether it was asked to end."""

    owner: Hashable = None
    reason: StopReason | None = None
    asked: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.asked.set()


class NodeRuntime:
    def __init__(
        self,
        *,
        factory: ProcessFactory,
        max_processes: int,
        max_warm: int = 8,
        warm_idle: float = 600.0,
        file_slots: FileSlots | None = None,
        max_file_operations: int = 10,
        egress: EgressProxy | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.factory = factory
        self.processes = Pool(max_processes)
        self.warm = WarmPool(max_warm=max_warm, idle_seconds=warm_idle)
        self.file_slots: FileSlots = file_slots if file_slots is not None else Pool(max_file_operations)
        # Started with the node; the sandboxes' bridge leads to its socket.
        self.egress = egress
        self.stop_grace = stop_grace
        self._running: dict[str, _Running] = {}
        self._closing = False

    async def start(self) -> None:
        if self.egress is not None:
            await self.egress.start()

    # -- process slots ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def slot(
        self, *, key: str, owner: Hashable = None, on_wait: Callable[[], object] | None = None
    ) -> AsyncIterator[None]:
        """A process slot for a turn of session ``key`` (waiting for one, after ``on_wait``, if all are
        taken); while it is held, :meth:`stop` reaches that turn, whatever step it is at."""
        await self.processes.acquire(owner=owner, on_wait=on_wait)
        running = self._running[key] = _Running(owner=owner)
        if self._closing:
            running.end(StopReason.SHUTDOWN)
        try:
            yield
        finally:
            if self._running.get(key) is running:
                del self._running[key]
            self.processes.release(owner=owner)

    def status(self) -> PoolStatus:
        return self.processes.status()

    def stop(self, key: str, *, reason: StopReason = StopReason.STOPPED) -> bool:
        """Stop the turn of session ``key`` that holds a slot here: interrupted if it runs, not started
        if it has not (``reason``: a person's Stop, or this node leaving the cluster). False if there is
        none."""
        running = self._running.get(key)
        if running is None:
            return False
        running.end(reason)
        return True

    def pids(self) -> list[int]:
        """The CLI processes this node holds (warm or running a turn): what it must end itself if it
        loses the cluster (see :mod:`runtime.cluster`)."""
        return [pid for process in self.warm.processes() if (pid := getattr(process, "pid", None))]

    def stop_all(self) -> None:
        """The node is shutting down: every turn ends (as :class:`ShutDown`), and none starts."""
        self._closing = True
        for running in self._running.values():
            running.end(StopReason.SHUTDOWN)

    async def shutdown(self) -> None:
        self.stop_all()
        await self.warm.shutdown()
        if self.egress is not None:
            # Last: a turn that ends during the shutdown may still be streaming through it.
            await self.egress.close()

    # -- ahead of a turn ----------------------------------------------------------------------
    def prewarm(self, spec: LiveSpec, *, owner: Hashable, unused_seconds: float) -> bool:
        """Start the process ``spec``'s session's next turn would start, before it is sent (its page
        is open, its member typing), so that the turn finds it warm. Only if the session has none
        and runs no turn, a process slot is free now (it is held while the process starts: a start
        ahead never waits, nor makes a turn wait for long) and the warm pool has room for the member
        (see :meth:`WarmPool.prewarm`). Closed if no turn takes it within ``unused_seconds``. True if
        one is being started."""
        key = spec.session_id
        if self._closing or key in self._running or not self.processes.try_acquire(owner=owner):
            return False
        starting = self.warm.prewarm(
            key,
            fingerprint=spec.fingerprint(),
            start=lambda: self.factory(spec),
            owner=owner,
            unused_seconds=unused_seconds,
        )
        if starting is None:
            self.processes.release(owner=owner)
            return False
        starting.add_done_callback(lambda _: self.processes.release(owner=owner))
        return True

    # -- a turn -----------------------------------------------------------------------------
    async def run_turn(
        self,
        *,
        spec: LiveSpec,
        prompt: Prompt,
        handler: TurnHandler,
        on_event: Callable[[claude.Event], Awaitable[None]],
        time_limit: float,
        keep_warm: bool = True,
        on_process: Callable[[int | None], Awaitable[None]] | None = None,
    ) -> TurnOutcome:
        """Run one turn of ``spec``'s session on its warm process (or a new one) to its end.

        ``on_event`` sees each event as it comes; ``on_process`` the process's id once it is taken
        (before the turn runs). After ``time_limit`` seconds the turn is interrupted (:class:`TimedOut`). With ``keep_warm`` the process stays for the session's next turn if it
        may. Raises CliNotFound or WorkdirMissing if no process can be started at all; whatever
        ``on_event`` raises ends the turn (its process closed) and is raised here."""
        key = spec.session_id
        running = self._running.get(key)
        own = running is None  # run without a slot of this node (a caller of its own): registered here
        if running is None:
            running = self._running[key] = _Running()
            if self._closing:
                running.end(StopReason.SHUTDOWN)
        keep = False
        try:
            if running.reason is not None:
                return _ended(running.reason)
            try:
                process = await self._take(spec)
            except SessionFailed as exc:
                return _failed(exc.exit)
            keep = True  # until the turn says otherwise: a process nothing ran on may stay
            if on_process is not None:
                await on_process(process.pid)
            if running.reason is not None:
                keep = running.reason != StopReason.SHUTDOWN
                return _ended(running.reason)
            outcome, keep = await self._turn(process, running, prompt, handler, on_event, time_limit)
            return outcome
        except BaseException:
            keep = False
            raise
        finally:
            try:
                await asyncio.shield(self.warm.give_back(key, keep=keep and keep_warm))
            finally:
                if own and self._running.get(key) is running:
                    del self._running[key]

    async def _take(self, spec: LiveSpec) -> Process:
        """The session's warm process, switched to the turn's model and permission mode, or a new one."""
        key = spec.session_id
        running = self._running.get(key)
        owner = running.owner if running is not None else None
        process = await self.warm.take(
            key, fingerprint=spec.fingerprint(), start=lambda: self.factory(spec), owner=owner
        )
        try:
            if process.model != spec.model:
                await process.set_model(spec.model)
            if process.mode != spec.mode:
                await process.set_permission_mode(spec.mode)
        except SessionFailed as exc:
            log.warning("the warm process of %s took no change (%s): a new one starts", key, exc.exit.stderr)
            await self.warm.give_back(key, keep=False)
            process = await self.warm.take(
                key, fingerprint=spec.fingerprint(), start=lambda: self.factory(spec), owner=owner
            )
        return process

    async def _turn(
        self,
        process: Process,
        running: _Running,
        prompt: Prompt,
        handler: TurnHandler,
        on_event: Callable[[claude.Event], Awaitable[None]],
        time_limit: float,
    ) -> tuple[TurnOutcome, bool]:
        """The turn on its process, to its end; its outcome, and whether the process may stay warm."""
        seen = claude.Outcome()

        async def pump() -> None:
            async for event in process.turn(prompt, handler):
                seen.see(event)
                await on_event(event)

        pumping = asyncio.create_task(pump(), name="claude-turn")
        asked = asyncio.create_task(running.asked.wait(), name="claude-turn-stop")
        try:
            await asyncio.wait({pumping, asked}, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            pumping.cancel()
            raise
        finally:
            asked.cancel()
        if pumping.done():
            pumping.result()  # what on_event raised ends the turn here
            if seen.result is not None:
                return Done(result=seen.result, failure=seen.failure(), streamed=seen.streamed_tokens), True
            code = 1 if seen.returncode is None else seen.returncode  # (a process closed under the turn)
            return _failed(claude.Exit(returncode=code, stderr=seen.stderr), seen), False
        if running.reason == StopReason.SHUTDOWN:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            return ShutDown(), False
        keep = await asyncio.shield(self._interrupt(process, pumping))
        if running.reason == StopReason.STOPPED:
            return Stopped(result=seen.result, streamed=seen.streamed_tokens), keep
        return TimedOut(no_connection=seen.no_connection, streamed=seen.streamed_tokens), keep

    async def _interrupt(self, process: Process, pumping: asyncio.Task[None]) -> bool:
        """Stop the turn through the protocol; True if the process may stay warm."""
        with contextlib.suppress(Exception):
            await process.interrupt()
        done, _ = await asyncio.wait({pumping}, timeout=self.stop_grace)
        if done:
            return not pumping.cancelled() and pumping.exception() is None
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
        return False  # it did not stop: the warm pool ends the process and its tree


def _ended(reason: StopReason) -> TurnOutcome:
    return ShutDown() if reason == StopReason.SHUTDOWN else Stopped()


def _failed(exit: claude.Exit, seen: claude.Outcome | None = None) -> Failed:
    if seen is None:
        seen = claude.Outcome(returncode=exit.returncode, stderr=exit.stderr)
    failure = seen.failure()
    assert failure is not None  # no result: always a failure
    return Failed(exit=exit, failure=failure)
