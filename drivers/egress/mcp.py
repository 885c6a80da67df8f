"""The egress proxy's route to an admin's HTTP MCP servers, with a secret no agent holds.

No Django imports. An agent's CLI is given ``http://127.0.0.1:<bridge>/mcp/<token>`` for an HTTP MCP
server; the proxy forwards what comes there to the server's real URL (http or https), adding
``Authorization: Bearer <value>`` read from the server's environment variable the admin named, on
each request. The token names the route: the server side makes it unguessable and gives an agent
only the tokens of its own project's servers, so an agent of another project cannot use the route.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from .wire import Closed, Peer, exchange, host_of, passed_on, stream, why

PREFIX = b"/mcp/"


@dataclass(frozen=True)
class McpRoute:
    """Where an MCP server is, and the server's environment variable whose value is its bearer token."""

    url: str
    secret_env: str = ""


class McpFailure(Exception):
    def __init__(self, status: int, reason: str, text: str) -> None:
        super().__init__(text)
        self.status, self.reason, self.text = status, reason, text


def token_of(target: bytes) -> tuple[str, bytes]:
    """The route's token and what follows it (a path under the server's URL, a query)."""
    rest = target[len(PREFIX) :]
    cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    return rest[:cut].decode("ascii", "replace"), rest[cut:]


async def forward(
    client: Peer, request: h11.Request, route: McpRoute, body: Callable[[], Awaitable[Sequence[bytes]]]
) -> None:
    """One request to the MCP server with its secret added, the answer streamed back (an MCP server
    may answer with server-sent events)."""
    url = urlsplit(route.url)
    _, rest = token_of(request.target)
    headers = passed_on(request.headers, drop=(b"host", b"authorization"))
    headers.append((b"host", host_of(url).encode()))
    if route.secret_env:
        secret = os.environ.get(route.secret_env, "")
        if not secret:
            raise McpFailure(
                502,
                f"Bad gateway: {route.secret_env} is not set",
                f"The MCP server at {route.url} needs the server's variable {route.secret_env}, which is not "
                "set: an admin sets it in the server's environment and restarts the server.\n",
            )
        headers.append((b"authorization", b"Bearer " + secret.encode()))
    path = url.path.encode() or b"/"
    if rest.startswith(b"/"):
        path = path.rstrip(b"/") + rest
    elif rest.startswith(b"?"):
        path += rest
    elif url.query:
        path += b"?" + url.query.encode()
    outgoing = h11.Request(method=request.method, target=path, headers=headers)
    try:
        upstream, response = await exchange(None, url, outgoing, await body())
    except (OSError, Closed, h11.LocalProtocolError, TimeoutError) as exc:
        raise McpFailure(
            502, f"Bad gateway: the MCP server at {route.url} gave no answer", f"{route.url}: {why(exc)}.\n"
        ) from None
    try:
        await client.send(
            h11.Response(status_code=response.status_code, reason=response.reason, headers=passed_on(response.headers))
        )
        await stream(upstream, client)
    finally:
        upstream.close()
