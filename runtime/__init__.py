"""The runtime: what runs turns and tasks, behind the :class:`Engine` interface; no Django imports.

- :mod:`runtime.engine`: the :class:`Engine` services, pages and the API talk to, and the hooks the
  services give it (how a saved turn runs, what the task scheduler asks);
- :mod:`runtime.local`: :class:`LocalEngine`, everything in this process;
- :mod:`runtime.node`: :class:`NodeRuntime`, what one machine does with CLI processes: it runs a
  whole turn on a warm process and returns how it ended (:mod:`runtime.outcomes`);
- :mod:`runtime.turns`, :mod:`runtime.scheduler`, :mod:`runtime.pool`, :mod:`runtime.warm`: the
  per-session queues, the task scheduler, the fair slot limit, the warm processes.

The composition root (``project/runtime.py``) builds the engine and hands it down; arrows point from
the services down to here, never back.
"""

from .engine import Engine, EngineNotRunning, NoEngine, TaskHooks, TurnHooks
from .local import LocalEngine
from .node import FileSlots, NodeRuntime, Process, ProcessFactory
from .outcomes import Done, Failed, ShutDown, Stopped, StopReason, TimedOut, TurnOutcome
from .pool import Pool, PoolStatus
from .scheduler import Hold, SchedulerHooks, TaskScheduler
from .turns import Ticket, TurnJob, TurnQueue
from .warm import WarmPool

__all__ = [
    "Done",
    "Engine",
    "EngineNotRunning",
    "Failed",
    "FileSlots",
    "Hold",
    "LocalEngine",
    "NoEngine",
    "NodeRuntime",
    "Pool",
    "PoolStatus",
    "Process",
    "ProcessFactory",
    "SchedulerHooks",
    "ShutDown",
    "StopReason",
    "Stopped",
    "TaskHooks",
    "TaskScheduler",
    "Ticket",
    "TimedOut",
    "TurnHooks",
    "TurnJob",
    "TurnOutcome",
    "TurnQueue",
    "WarmPool",
]
