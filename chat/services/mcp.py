"""MCP servers: the ones an admin configured for a project, as the CLI gets them, and as a chat shows them.

The configuration comes from the database only (:class:`~chat.models.McpServer`, written in the
admin): it reaches the CLI as ``--mcp-config`` JSON, with ``--strict-mcp-config``, so that no
``.mcp.json`` or config file an agent wrote is read. A stdio server is started by the CLI, which
runs in the agent's sandbox: the server runs there too, as the agent, with its network. A member
may turn a server off for one chat (``Session.mcp_off``): it is left out of the configuration, and
the chat's next turn starts a process without it (its spec's fingerprint differs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from drivers import claude, egress
from drivers.claude.sandbox import BRIDGE_URL

from ..models import McpServer, Session
from ..projects import OWN
from . import agents

# How the CLI names an MCP server's tools: mcp__<server>__<tool>.
TOOL_PREFIX = "mcp__"


class McpRefused(Exception):
    """A server cannot be turned on or off here; the text says why."""


def project_key(session: Session) -> str:
    return session.project or OWN


def servers_of(session: Session) -> list[McpServer]:
    """The enabled MCP servers of the chat's project, turned off for it or not."""
    return list(McpServer.objects.filter(project=project_key(session), enabled=True).order_by("name"))


@dataclass(frozen=True)
class Setup:
    """What a turn's CLI gets: ``config``, its ``--mcp-config`` JSON ("" for none); and the egress
    proxy's ``routes`` to every HTTP server there is (token -> where, and the secret's variable)."""

    config: str = ""
    routes: Mapping[str, egress.McpRoute] = field(default_factory=dict)


def route_token(server: McpServer) -> str:
    """The proxy's route to an HTTP server: unguessable (an HMAC with the server's secret key), so
    that only the agents of its project, whose configuration names it, reach it."""
    what = f"{server.pk}\0{server.url}\0{server.secret_env}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"mcp-route\0" + what, hashlib.sha256).hexdigest()[:40]


def _entry(server: McpServer) -> dict[str, Any]:
    if server.kind == McpServer.Kind.STDIO:
        return {"type": "stdio", "command": server.command, "args": list(server.args), "env": dict(server.env)}
    if not agents.sandboxed():
        # No sandbox, no proxy: the CLI reaches the server itself, and holds its secret as it holds the API key.
        secret = os.environ.get(server.secret_env, "") if server.secret_env else ""
        return {
            "type": "http",
            "url": server.url,
            **({"headers": {"Authorization": f"Bearer {secret}"}} if secret else {}),
        }
    # In the sandbox, through the egress proxy, which adds the secret: the agent never holds it.
    return {"type": "http", "url": f"{BRIDGE_URL}/mcp/{route_token(server)}"}


def setup_for(session: Session) -> Setup:
    """The MCP servers a turn of ``session`` starts: its project's, but those its member turned off."""
    return _setup(session, list(McpServer.objects.filter(enabled=True).order_by("name")))


async def asetup_for(session: Session) -> Setup:
    """:func:`setup_for` from the event loop (a turn's start)."""
    return _setup(session, [server async for server in McpServer.objects.filter(enabled=True).order_by("name")])


def config_for(session: Session) -> str:
    return setup_for(session).config


def _setup(session: Session, every: list[McpServer]) -> Setup:
    """From every enabled server (one query): the chat's configuration, and the proxy's routes to
    all HTTP servers there are now, so that one an admin deleted, disabled or changed is no longer
    served to an agent that kept its route."""
    off, key = set(session.mcp_off or ()), project_key(session)
    routes: dict[str, egress.McpRoute] = {}
    chosen = {server.name: _entry(server) for server in every if server.project == key and server.name not in off}
    for server in every:
        if server.kind == McpServer.Kind.HTTP:
            routes[route_token(server)] = egress.McpRoute(url=server.url, secret_env=server.secret_env)
    return Setup(config=json.dumps({"mcpServers": chosen}, sort_keys=True) if chosen else "", routes=routes)


def set_off(*, session: Session, name: str, off: bool) -> Session:
    """Turn the project's server ``name`` off (or on again) for this chat, from its next turn on."""
    if session.is_archived:
        raise McpRefused("This chat is archived and read-only. Press Restore to continue it.")
    if session.kind != Session.Kind.CHAT:
        raise McpRefused("MCP servers are turned off per chat; a task runs with its project's.")
    if name not in {server.name for server in servers_of(session)}:
        raise McpRefused(f"This chat's project has no MCP server {name[:40]!r}. Reload the page.")
    names = [n for n in session.mcp_off or () if n != name] + ([name] if off else [])
    session.mcp_off = sorted(names)
    session.save(update_fields=["mcp_off"])
    return session


def seen_of(init: claude.Init) -> dict[str, Any]:
    """What the CLI's init message says of the MCP servers: each one's status and its tools."""
    tools: dict[str, list[str]] = {}
    for tool in init.tools:
        if tool.startswith(TOOL_PREFIX):
            server, _, name = tool[len(TOOL_PREFIX) :].partition("__")
            tools.setdefault(server, []).append(name)
    return {"servers": {s.name: {"status": s.status, "tools": sorted(tools.get(s.name, []))} for s in init.mcp_servers}}


@dataclass(frozen=True)
class Row:
    """One server as the chat page lists it."""

    name: str
    kind: str
    where: str  # what it runs or reaches, in words
    on: bool
    status: str  # as the CLI last reported it, or what is known without it
    tools: tuple[str, ...]


def panel(session: Session) -> list[Row]:
    """The chat's project's MCP servers, whether each is on for this chat, its status and tools."""
    off = set(session.mcp_off or ())
    seen = (session.mcp_seen or {}).get("servers", {})
    rows = []
    for server in servers_of(session):
        reported = seen.get(server.name) or {}
        if server.name in off:
            status = "off in this chat"
        else:
            status = str(reported.get("status") or "starts with the next message")
        where = server.url if server.kind == McpServer.Kind.HTTP else server.command
        rows.append(
            Row(
                name=server.name,
                kind=server.kind,
                where=where,
                on=server.name not in off,
                status=status,
                tools=tuple(reported.get("tools") or ()),
            )
        )
    return rows
