"""The egress proxy: the one way out of an agent's network namespace.

No Django imports. One asyncio server listens on a Unix socket in a folder only the server can
open; every sandbox gets that socket bound in, and a socat inside turns it into a TCP port on the
sandbox's own loopback (see :mod:`drivers.claude.sandbox`). The proxy reads what arrives as HTTP
and serves three kinds of request:

- ``POST /v1/messages`` and the like (origin-form, the CLI's ``ANTHROPIC_BASE_URL``): forwarded to
  the real Messages API with the server's credentials put in place of the placeholders the agent
  holds, the answer streamed back chunk by chunk (server-sent events are never buffered);
- ``CONNECT host:port`` (``HTTPS_PROXY``): a byte tunnel to a host the admin allows;
- ``GET http://host/...`` (``HTTP_PROXY``): forwarded to a host the admin allows.

Anything else is refused with a 403 whose reason phrase and body say what was refused and which
setting an admin changes. Connections to allowed hosts go to addresses checked by
:func:`drivers.egress.hosts.resolve`, never to the name again.

HTTP is read and written with h11, on both sides (:mod:`drivers.egress.wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import h11

from . import mcp
from .hosts import WEB_PORTS, Address, AllowedHosts, Refused, normal_host, resolve
from .wire import (
    CONNECT_TIMEOUT,
    Closed,
    Peer,
    ask,
    at,
    exchange,
    host_of,
    listen,
    passed_on,
    relay,
    stream,
    why,
)

log = logging.getLogger(__name__)

# A request to the API is read whole before it is sent, so that a kept connection the API has
# closed meanwhile can be retried on a new one. A Messages API request is at most 32 MB.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
# Connections at once across all sandboxes: one agent opening thousands must not take the
# server's file descriptors.
MAX_CONNECTIONS = 1000
SETTING = "CLAUDE_AGENT_ALLOWED_HOSTS"
# What the API route forwards: the Messages API and the list of models. The key may be able to
# do more (files, batches of the same workspace); an agent has no business there. Matched whole,
# so that no dot segment or escape can lead the API's router elsewhere.
API_PATHS = ("/v1/messages", "/v1/messages/count_tokens", "/v1/models")
_API_PATH = re.compile(r"/v1/messages(/count_tokens)?|/v1/models(/[A-Za-z0-9_-][A-Za-z0-9._-]*)?")
# How long a client's connection may wait for its next request.
IDLE_SECONDS = 300.0
# The server's credentials and the header each goes in. The agent holds a placeholder of each
# the server has, so its CLI sends the same kind of header it would with the real one.
CREDENTIALS = {
    "ANTHROPIC_API_KEY": b"x-api-key",
    "ANTHROPIC_AUTH_TOKEN": b"authorization",
    "CLAUDE_CODE_OAUTH_TOKEN": b"authorization",
}


def placeholder(variable: str) -> str:
    """What the agent holds in place of the server's ``variable``; the proxy swaps it for the real one."""
    return f"sandbox-placeholder-{variable.lower().replace('_', '-')}"


@dataclass(frozen=True)
class Policy:
    """Where the API is, the credentials to add (variable name -> value) and the hosts agents may reach.
    Asked for on every request, so that a changed key or setting needs no restart of the proxy."""

    api_url: str
    credentials: Mapping[str, str] = field(default_factory=dict)
    allowed: AllowedHosts = field(default_factory=AllowedHosts)


def _credentials(headers: Iterable[tuple[bytes, bytes]], credentials: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """The server's credentials in place of the placeholders the agent sent (one header of each kind);
    anything else the agent put in a credential header is dropped (the route serves the team's key only)."""
    wanted: dict[bytes, bytes] = {}
    for name, value in headers:
        token = value.removeprefix(b"Bearer ").strip().decode("latin-1")
        for variable, header in CREDENTIALS.items():
            real = credentials.get(variable)
            if header == name and real and token == placeholder(variable):
                wanted[header] = real.encode() if header == b"x-api-key" else b"Bearer " + real.encode()
    return list(wanted.items())


def _api_path(target: str) -> bool:
    return _API_PATH.fullmatch(target.split("?", 1)[0]) is not None


def _reason(text: str) -> bytes:
    """A reason phrase from ``text`` (visible ASCII only, one line)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:300].encode("ascii")


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, text: str) -> None:
        super().__init__(text)
        self.status, self.reason, self.text = status, reason, text


def _not_allowed(host: str, port: int) -> _Refusal:
    shown = (f"[{host}]" if ":" in host else host) if port in WEB_PORTS else at(host, port)
    return _Refusal(
        403,
        f"Forbidden by the sandbox: {at(host, port)} is not in {SETTING}",
        f"The sandbox refused the connection to {at(host, port)}: agents reach only the model API and the "
        f"hosts an admin allows. An admin can allow it by adding {shown} to {SETTING} (comma-separated "
        "host, host:port or *.domain) and restarting the server.\n",
    )


class EgressProxy:
    """The proxy's server: :meth:`start` listens on ``folder/egress.sock``, :meth:`close` ends it
    with every connection it holds. ``policy`` is asked on each request."""

    def __init__(self, *, folder: Path, policy: Callable[[], Policy]) -> None:
        self.folder = folder
        self.socket_path = folder / "egress.sock"
        self._policy = policy
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._inode: int | None = None
        # Why the API could not be reached the last time it was not (None once it answers again):
        # the agent's CLI only sees its connection end, the person's error message says this.
        self.api_failure: str | None = None
        # The admin's HTTP MCP servers by their routes' tokens (see :mod:`drivers.egress.mcp`): all
        # there are, set anew as each turn starts (a deleted one is gone from then on).
        self.mcp_routes: dict[str, mcp.McpRoute] = {}

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        self.socket_path.unlink(missing_ok=True)
        listening = listen(self.socket_path)
        self._inode = os.stat(self.socket_path).st_ino
        self._server = await asyncio.start_unix_server(self._serve, sock=listening)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self._inode:
                self.socket_path.unlink()

    # -- one client connection ----------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("egress proxy: %d connections open, one more refused", len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        client = Peer(h11.SERVER, reader, writer)
        api: Peer | None = None
        try:
            while True:
                async with asyncio.timeout(IDLE_SECONDS):
                    request = await client.next()
                if not isinstance(request, h11.Request):
                    return  # the client closed between requests
                try:
                    if request.method == b"CONNECT":
                        await self._tunnel(client, request)
                        return
                    if not request.target.startswith(b"/"):
                        await self._forward(client, request)
                        return
                    if request.target.startswith(mcp.PREFIX):
                        await self._mcp(client, request)
                        return
                    api = await self._api(client, request, api)
                except _Refusal as refusal:
                    log.info("egress proxy: %s", refusal.reason)
                    await self._refuse(client, refusal)
                    return
                if not client.reusable():
                    return
        except (Closed, OSError, asyncio.IncompleteReadError, h11.LocalProtocolError, TimeoutError):
            pass
        finally:
            if api is not None:
                api.close()
            client.close()
            self._connections.discard(task)

    async def _refuse(self, client: Peer, refusal: _Refusal) -> None:
        body = refusal.text.encode()
        response = h11.Response(
            status_code=refusal.status,
            reason=_reason(refusal.reason),
            headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        )
        with contextlib.suppress(h11.LocalProtocolError):
            await client.send(response, h11.Data(data=body), h11.EndOfMessage())

    async def _body(self, client: Peer) -> list[bytes]:
        """The request's body, read whole (``Expect: 100-continue`` answered)."""
        if client.http.client_is_waiting_for_100_continue:
            await client.send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await client.next()
            if isinstance(event, h11.EndOfMessage):
                return chunks
            if not isinstance(event, h11.Data):
                raise Closed("the request ended before its body")
            size += len(event.data)
            if size > MAX_REQUEST_BYTES:
                raise _Refusal(
                    413,
                    "Request too large",
                    f"A request through the sandbox's proxy may hold at most {MAX_REQUEST_BYTES} bytes.\n",
                )
            chunks.append(bytes(event.data))

    # -- the model API ------------------------------------------------------------------
    async def _api(self, client: Peer, request: h11.Request, kept: Peer | None) -> Peer | None:
        """Forward one request to the API, its answer streamed back; the API connection to keep for
        the client's next request, or None."""
        target = request.target.decode("ascii", "replace")
        if not _api_path(target):
            raise _Refusal(
                403,
                f"Forbidden by the sandbox: {target.split('?', 1)[0]} is not forwarded to the API",
                f"The sandbox forwards only the Messages API ({', '.join(API_PATHS)}) to the model API with the "
                f"team's credentials; {target.split('?', 1)[0]} is not forwarded.\n",
            )
        policy = self._policy()
        url = urlsplit(policy.api_url)
        body = await self._body(client)
        headers = passed_on(request.headers, drop=(b"host", b"x-api-key", b"authorization"))
        headers += [(b"host", host_of(url).encode()), *_credentials(request.headers, policy.credentials)]
        outgoing = h11.Request(
            method=request.method, target=url.path.rstrip("/").encode() + request.target, headers=headers
        )
        try:
            api, response = await exchange(kept, url, outgoing, body)
        except (OSError, Closed, h11.LocalProtocolError, TimeoutError) as exc:
            self.api_failure = why(exc)
            log.warning("egress proxy: cannot reach the API at %s: %s", policy.api_url, self.api_failure)
            # No answer at all, as if the API were unreachable from inside: the CLI retries and
            # reports a connection error, as it would without the proxy.
            client.close(abort=True)
            raise Closed(self.api_failure) from None
        self.api_failure = None
        await client.send(
            h11.Response(status_code=response.status_code, reason=response.reason, headers=passed_on(response.headers))
        )
        await stream(api, client)
        return api if api.reusable() else None

    # -- the admin's HTTP MCP servers ---------------------------------------------------
    async def _mcp(self, client: Peer, request: h11.Request) -> None:
        token, _ = mcp.token_of(request.target)
        route = self.mcp_routes.get(token)
        if route is None:
            raise _Refusal(
                403,
                "Forbidden by the sandbox: no such MCP server",
                "The sandbox's proxy serves only the MCP servers an admin configured for this project.\n",
            )
        try:
            await mcp.forward(client, request, route, lambda: self._body(client))
        except mcp.McpFailure as failure:
            raise _Refusal(failure.status, failure.reason, failure.text) from None

    # -- admin-allowed hosts ------------------------------------------------------------
    async def _allowed(self, host: str, port: int) -> list[Address]:
        if not self._policy().allowed.allows(host, port):
            raise _not_allowed(host, port)
        try:
            return await resolve(host, port)
        except Refused as refused:
            raise _Refusal(
                403,
                f"Forbidden by the sandbox: {refused}",
                f"The sandbox refused the connection to {at(host, port)}: {refused}. Agents never reach the "
                f"server itself, link-local or (through a name) private addresses, even when {SETTING} allows "
                "the name.\n",
            ) from None

    async def _tunnel(self, client: Peer, request: h11.Request) -> None:
        """``CONNECT host:port``: a byte tunnel to an allowed host."""
        host, port = _authority(request.target.decode("ascii", "replace"))
        addresses = await self._allowed(host, port)
        reader, writer = await _connect(addresses, port, host)
        try:
            await client.send(h11.Response(status_code=200, reason=b"Connection established", headers=[]))
            early, _closed = client.http.trailing_data
            if early:
                writer.write(early)
            await relay(client.reader, client.writer, reader, writer)
        finally:
            writer.close()

    async def _forward(self, client: Peer, request: h11.Request) -> None:
        """``GET http://host/path`` (absolute form): the request to an allowed host, then the end."""
        target = request.target.decode("ascii", "replace")
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            raise _Refusal(
                400,
                "Bad request: the sandbox's proxy forwards http:// URLs; https goes through CONNECT",
                f"The sandbox's proxy cannot forward {target!r}: it takes http:// URLs, and https through "
                "CONNECT (HTTPS_PROXY).\n",
            )
        try:
            host = normal_host(parts.hostname)
            port = parts.port or 80
        except ValueError as exc:
            raise _Refusal(
                400, f"Bad request: {exc}", f"The sandbox's proxy cannot read {target!r}: {exc}.\n"
            ) from None
        addresses = await self._allowed(host, port)
        body = await self._body(client)
        reader, writer = await _connect(addresses, port, host)
        upstream = Peer(h11.CLIENT, reader, writer)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = [*passed_on(request.headers, drop=(b"host",)), (b"host", host_of(parts).encode())]
            headers.append((b"connection", b"close"))
            try:
                response = await ask(
                    upstream, h11.Request(method=request.method, target=path.encode(), headers=headers), body
                )
            except (OSError, Closed) as exc:
                raise _Refusal(
                    502,
                    f"Bad gateway: {at(host, port)} gave no answer",
                    f"{at(host, port)} gave no answer ({exc}).\n",
                ) from None
            headers = [*passed_on(response.headers), (b"connection", b"close")]
            await client.send(h11.Response(status_code=response.status_code, reason=response.reason, headers=headers))
            await stream(upstream, client)
        finally:
            upstream.close()


def _authority(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    try:
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{target!r} is not host:port")
        return normal_host(host), int(port)
    except ValueError as exc:
        raise _Refusal(
            400, f"Bad request: {exc}", f"The sandbox's proxy cannot read CONNECT {target!r}: {exc}.\n"
        ) from None


async def _connect(
    addresses: Sequence[Address], port: int, host: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of the checked ``addresses`` that answers (never a new lookup)."""
    failures = []
    for address in addresses:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await asyncio.open_connection(str(address), port)
        except (OSError, TimeoutError) as exc:
            failures.append(f"{address}: {why(exc)}")
    raise _Refusal(
        502,
        f"Bad gateway: cannot connect to {at(host, port)}",
        f"The sandbox's proxy could not connect to {at(host, port)} ({'; '.join(failures)}).\n",
    )
