"""The egress proxy's HTTP plumbing: one side of an exchange as an h11 connection over asyncio
streams, the model API's connection (directly or through the server's own https proxy),
streaming an answer on, a byte tunnel both ways, and the proxy's private Unix socket.

No Django imports. h11 (a small, well-kept sans-I/O HTTP/1.1 library) reads and writes HTTP on
both sides: its state machine knows request and response framing, keep-alive and CONNECT, so
none of that is hand-written here, and each chunk it reads is passed on at once.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import h11

# What one read takes at most; it is passed on as soon as it is read.
READ_SIZE = 64 * 1024
CONNECT_TIMEOUT = 30.0
# Headers about one hop that a proxy does not pass on (RFC 9110 7.6.1), and what the proxy asks
# of its client alone. Framing (Content-Length, Transfer-Encoding) is h11's to keep right.
HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate"}
    | {b"te", b"trailer", b"upgrade", b"expect"}
)


class Closed(Exception):
    """The peer closed its connection (or broke the protocol) in the middle of an exchange."""


class Peer:
    """One side of a proxied exchange: an h11 connection over asyncio streams."""

    def __init__(
        self, role: type[h11.CLIENT] | type[h11.SERVER], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.http = h11.Connection(role)
        self.reader, self.writer = reader, writer

    async def next(self) -> h11.Event:
        while True:
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:
                raise Closed(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # h11 types its sentinels loosely
            self.http.receive_data(await self.reader.read(READ_SIZE))

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            if data := self.http.send(event):
                self.writer.write(data)
        await self.writer.drain()

    def reusable(self) -> bool:
        """Whether the exchange ended cleanly and the connection may carry the next one."""
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
            return True
        return False

    def close(self, *, abort: bool = False) -> None:
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


def passed_on(headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[bytes] = ()) -> list[tuple[bytes, bytes]]:
    """The end-to-end headers of ``headers`` (h11 gives names in lower case)."""
    headers = list(headers)
    named = {token.strip().lower() for name, value in headers if name == b"connection" for token in value.split(b",")}
    dropped = HOP | named | set(drop)
    return [(name, value) for name, value in headers if name not in dropped]


def at(host: str, port: int) -> str:
    """``host:port`` as written in a URL and in the setting (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_of(url: SplitResult) -> str:
    """The Host header of ``url``: its host and port, never a user or password in it."""
    return url.netloc.rpartition("@")[2]


def why(exc: BaseException) -> str:
    """Words for a failed connection: the system's for an errno, else the exception's."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, ssl.SSLError | socket.gaierror):
        return os.strerror(exc.errno)
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def listen(path: Path) -> socket.socket:
    """A Unix socket bound at ``path``, readable and writable by the server's user only. A path too
    long for a socket address (about 108 bytes) is bound through its folder's descriptor."""
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(path)) < 100:
            listening.bind(str(path))
        else:
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                listening.bind(f"/proc/self/fd/{folder}/{path.name}")
            finally:
                os.close(folder)
        os.chmod(path, 0o600)
    except BaseException:
        listening.close()
        raise
    return listening


async def open_api(url: SplitResult) -> Peer:
    """A connection to the model API at ``url`` (the server's own choice of address: no checks),
    through the server's own https proxy if it has one (``HTTPS_PROXY``, ``NO_PROXY``), as the CLI
    itself would go without the sandbox."""
    host, tls = url.hostname or "", url.scheme == "https"
    port = url.port or (443 if tls else 80)
    context = ssl.create_default_context() if tls else None
    via = servers_proxy(host) if tls else None
    async with asyncio.timeout(CONNECT_TIMEOUT):
        if via is None:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if tls else None
            )
        else:
            reader, writer = await asyncio.open_connection(via.hostname, via.port or 80)
            try:
                await tunnel_through(via, reader, writer, host, port)
                await writer.start_tls(context, server_hostname=host)  # type: ignore[arg-type]  # tls: a context
            except BaseException:
                writer.transport.abort()
                raise
    return Peer(h11.CLIENT, reader, writer)


def servers_proxy(host: str) -> SplitResult | None:
    """The server's https proxy for ``host``, read from its environment when used; None to go directly."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https")
    if not proxy or urllib.request.proxy_bypass(host):  # NO_PROXY
        return None
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}")


async def tunnel_through(
    via: SplitResult, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
) -> None:
    """Ask the server's proxy ``via`` for a tunnel to ``host:port`` (with its user and password, if any)."""
    proxy = Peer(h11.CLIENT, reader, writer)
    headers = [(b"host", at(host, port).encode())]
    if via.username:
        login = f"{unquote(via.username)}:{unquote(via.password or '')}".encode()
        headers.append((b"proxy-authorization", b"Basic " + base64.b64encode(login)))
    await proxy.send(
        h11.Request(method=b"CONNECT", target=at(host, port).encode(), headers=headers), h11.EndOfMessage()
    )
    response = await response_head(proxy)
    if response.status_code != 200:
        raise Closed(f"the server's proxy {host_of(via)} answered {response.status_code} {response.reason.decode()}")
    if proxy.http.trailing_data[0]:
        raise Closed(f"the server's proxy {host_of(via)} sent data before the tunnel was open")


async def exchange(
    kept: Peer | None, url: SplitResult, request: h11.Request, body: Sequence[bytes]
) -> tuple[Peer, h11.Response]:
    """Send ``request`` to the API on the kept connection, or a new one if there is none or the API
    had closed it meanwhile; the connection and the head of the answer."""
    if kept is not None:
        try:
            return kept, await ask(kept, request, body)
        except (OSError, Closed, h11.LocalProtocolError):
            kept.close(abort=True)
    api = await open_api(url)
    try:
        return api, await ask(api, request, body)
    except BaseException:
        api.close(abort=True)
        raise


async def ask(upstream: Peer, request: h11.Request, body: Sequence[bytes]) -> h11.Response:
    await upstream.send(request, *(h11.Data(data=chunk) for chunk in body), h11.EndOfMessage())
    return await response_head(upstream)


async def response_head(upstream: Peer) -> h11.Response:
    while True:
        event = await upstream.next()
        if isinstance(event, h11.Response):
            return event
        if not isinstance(event, h11.InformationalResponse):
            raise Closed("the connection ended before an answer")


async def stream(upstream: Peer, client: Peer) -> None:
    """The answer's body, each piece passed on as it arrives (no buffering: tokens stream)."""
    while True:
        event = await upstream.next()
        if isinstance(event, h11.Data):
            await client.send(h11.Data(data=event.data))
        elif isinstance(event, h11.EndOfMessage):
            await client.send(h11.EndOfMessage())
            return
        else:
            raise Closed("the answer ended early")


async def relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Bytes both ways until both sides have finished; a broken side ends both."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(READ_SIZE):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()

    pipes = [asyncio.ensure_future(pipe(client_reader, writer)), asyncio.ensure_future(pipe(reader, client_writer))]
    try:
        for done in asyncio.as_completed(pipes):
            await done  # an error here (a reset) ends the other direction too
    except (OSError, RuntimeError):
        pass
    finally:
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
