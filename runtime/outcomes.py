"""How a turn ended on a node, as typed values; and why a turn was ended before its time.

No Django imports. :meth:`runtime.node.NodeRuntime.run_turn` returns one :data:`TurnOutcome`; the
services turn it into a record (a status, what to say). Whether the turn was stopped by a person
or by the node shutting down is the node's to know: it is told which (:class:`StopReason`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from drivers.claude import Exit, Failure, Result


class StopReason(enum.StrEnum):
    STOPPED = "stopped"  # a person pressed Stop (or a task was paused, terminated, ...)
    WITHDRAWN = "withdrawn"  # taken back before it started (cancelled, or an API caller gave up)
    SHUTDOWN = "shutdown"  # the server (the node) is stopping


@dataclass(frozen=True)
class Done:
    """The CLI ended the turn with its result. ``failure`` says why, if that result is an error
    (not logged in, the API unreachable, a transcript that is gone, ...)."""

    result: Result
    failure: Failure | None = None
    # Input and output tokens as they streamed; figures carried along, not part of what the outcome is.
    streamed: tuple[int, int] = field(default=(0, 0), compare=False)


@dataclass(frozen=True)
class Stopped:
    """Stop interrupted the turn; what came so far was passed on. ``streamed``: the input and output
    tokens it used as they streamed (the CLI's result of an interrupted turn reports none)."""

    result: Result | None = field(default=None, compare=False)  # the CLI's result of the interrupted turn
    streamed: tuple[int, int] = field(default=(0, 0), compare=False)


@dataclass(frozen=True)
class TimedOut:
    """The turn ran out of time and was interrupted. ``no_connection``: the CLI was still retrying a
    request that never got an answer at all (not a long answer: an API out of reach)."""

    no_connection: bool = False
    streamed: tuple[int, int] = field(default=(0, 0), compare=False)  # as in Stopped


@dataclass(frozen=True)
class ShutDown:
    """The node shut down during the turn (or before it could start its process)."""


@dataclass(frozen=True)
class Failed:
    """The process could not start, or ended without a result: how it ended, and why (read from what
    it said: its stderr, its exit code)."""

    exit: Exit
    failure: Failure


TurnOutcome = Done | Stopped | TimedOut | ShutDown | Failed
