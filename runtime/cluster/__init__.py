"""Cluster mode: turns and task runs as jobs of a PostgreSQL queue (procrastinate), run by engine processes.

- :mod:`runtime.cluster.engine`: :class:`ClusterEngine`, the :class:`runtime.Engine` of web and engine
  processes alike;
- :mod:`runtime.cluster.jobs`: the jobs an engine node runs;
- :mod:`runtime.cluster.serving`: an engine process's life (heartbeat, fence, janitor, drain);
- :mod:`runtime.cluster.slots`: ``CLAUDE_MAX_FILE_OPERATIONS`` across the nodes;
- :mod:`runtime.cluster.watch`: waiting for a turn in another process (LISTEN/NOTIFY);
- :mod:`runtime.cluster.hooks`: what it asks of the services' records, and the queues' names.
"""

from .engine import ClusterEngine, Limits
from .hooks import SHARED_QUEUE, ClusterHooks, TurnState, node_queue, session_lock
from .serving import NodeRefused, clean_up, serve
from .slots import ClusterFileSlots
from .watch import TurnWatch

__all__ = [
    "SHARED_QUEUE",
    "ClusterEngine",
    "ClusterFileSlots",
    "ClusterHooks",
    "Limits",
    "NodeRefused",
    "TurnState",
    "TurnWatch",
    "clean_up",
    "node_queue",
    "serve",
    "session_lock",
]
