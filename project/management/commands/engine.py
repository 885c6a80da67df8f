"""`scripts/manage engine`: this machine's engine of a cluster (CLAUDE_ENGINE=cluster).

It runs the turns and task runs of the cluster's queue on this machine's CLI processes until SIGTERM
(or SIGINT), then drains. `engine --drain` asks the engine of this node (CLAUDE_NODE_ID) to drain,
and returns once it has.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.models import Node
from project import runtime
from runtime.cluster import NodeRefused, serve


class Command(BaseCommand):
    help = "Run this machine's engine of a cluster (CLAUDE_ENGINE=cluster): it runs turns and tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--drain",
            action="store_true",
            help="ask the running engine of this node (CLAUDE_NODE_ID) to drain: it takes no more turns, lets "
            "running ones finish (CLAUDE_DRAIN_GRACE), hands its sessions to the other engines and exits",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.CLAUDE_ENGINE != "cluster":
            raise CommandError(
                "The engine runs only in a cluster: set CLAUDE_ENGINE=cluster (with DATABASE_URL and REDIS_URL). "
                "In local mode the web server (scripts/run) runs turns itself."
            )
        node = settings.CLAUDE_NODE_ID
        if options["drain"]:
            self._drain(node)
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        try:
            asyncio.run(self._serve())
        except NodeRefused as exc:
            raise CommandError(str(exc)) from None

    async def _serve(self) -> None:
        engine = runtime.build_cluster(with_node=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        concurrency = 2 * settings.CLAUDE_MAX_CONCURRENT + settings.CLAUDE_MAX_TASKS + 2
        self.stdout.write(f"Engine of node {engine.node_id} serving (up to {concurrency} jobs at once).")
        self.stdout.flush()
        await serve(engine, stop=stop, concurrency=concurrency)

    def _drain(self, node: str) -> None:
        if not Node.objects.filter(pk=node, dead=False).update(draining=True):
            raise CommandError(f"No engine of node {node} is running (set CLAUDE_NODE_ID to the node to drain).")
        self.stdout.write(f"Node {node} drains: its running turns finish (up to {settings.CLAUDE_DRAIN_GRACE:g} s).")
        deadline = time.monotonic() + settings.CLAUDE_DRAIN_GRACE + 60
        while not Node.objects.filter(pk=node, dead=True).exists():
            if time.monotonic() > deadline:
                raise CommandError(f"Node {node} did not finish draining; look at its log.")
            time.sleep(0.5)
        self.stdout.write(f"Node {node} has drained: its sessions continue on the other engines.")
