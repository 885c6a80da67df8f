"""The egress proxy (drivers/egress/proxy.py), on its real Unix socket: the model API with the
server's credentials in place of the agent's placeholders, streamed as it comes; admin-allowed
hosts through CONNECT and plain HTTP (a real server on a network of its own); refusals that say
what was refused and which setting an admin changes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from drivers.egress import EgressProxy, McpRoute, Policy, parse_allowed_hosts, placeholder

# A guard against a proxy that holds what it should pass on: the test fails instead of hanging.
GUARD = 30


@dataclass
class Upstream:
    """A stand-in for the API on 127.0.0.1 that answers in server-sent events: one event at once, the
    rest only when ``release`` is set. ``heads`` are the request heads it got (lines, lower-cased names)."""

    url: str = ""
    heads: list[list[str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await self.answer(reader, writer)
        writer.close()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.decode().split("\r\n")[:-2]
            self.heads.append(
                [lines[0], *(line.split(":", 1)[0].lower() + ":" + line.split(":", 1)[1] for line in lines[1:])]
            )
            length = next(
                (int(line.split(":")[1]) for line in lines[1:] if line.lower().startswith("content-length")), 0
            )
            self.bodies.append(await reader.readexactly(length))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(_chunk(b"event: message_start\ndata: {}\n\n"))
            await writer.drain()
            await self.release.wait()
            writer.write(_chunk(b"event: message_stop\ndata: {}\n\n") + b"0\r\n\r\n")
            await writer.drain()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    stand_in = Upstream()
    server = await asyncio.start_server(stand_in.serve, "127.0.0.1", 0)
    stand_in.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/gateway"
    stand_in.release.set()
    yield stand_in
    stand_in.release.set()
    server.close()


@dataclass
class Running:
    proxy: EgressProxy
    policy: Policy

    def use(self, **changes: object) -> None:
        self.policy = Policy(**{**self.policy.__dict__, **changes})  # type: ignore[arg-type]


@pytest.fixture
async def egress(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Running]:
    running = Running(proxy=None, policy=Policy(api_url=upstream.url, credentials={"ANTHROPIC_API_KEY": "sk-real-1"}))  # type: ignore[arg-type]
    running.proxy = EgressProxy(folder=tmp_path / "sandbox", policy=lambda: running.policy)
    await running.proxy.start()
    yield running
    await running.proxy.close()


class Client:
    """An HTTP client on the proxy's socket, as socat inside a sandbox connects (h11 reads the answers)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.http = h11.Connection(h11.CLIENT)

    @classmethod
    async def to(cls, proxy: EgressProxy) -> Client:
        return cls(*await asyncio.open_unix_connection(str(proxy.socket_path)))

    async def send(
        self, method: str, target: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
    ) -> None:
        headers = (("host", "127.0.0.1:3128"), *headers, ("content-length", str(len(body))))
        self.writer.write(self.http.send(h11.Request(method=method, target=target, headers=headers)) or b"")
        self.writer.write((self.http.send(h11.Data(data=body)) if body else b"") or b"")
        self.writer.write(self.http.send(h11.EndOfMessage()) or b"")
        await self.writer.drain()

    async def event(self) -> h11.Event:
        async with asyncio.timeout(GUARD):
            while (event := self.http.next_event()) is h11.NEED_DATA:
                self.http.receive_data(await self.reader.read(65536))
        return event  # type: ignore[return-value]

    async def answer(self) -> tuple[h11.Response, bytes]:
        response = await self.event()
        assert isinstance(response, h11.Response), response
        body = b""
        while not isinstance(event := await self.event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data), event
            body += event.data
        return response, body

    async def raw(self, data: bytes) -> bytes:
        """Send ``data`` as it is; everything until the proxy closes the connection."""
        self.writer.write(data)
        await self.writer.drain()
        async with asyncio.timeout(GUARD):
            return await self.reader.read()


async def test_the_api_gets_the_servers_key_in_place_of_the_placeholder_and_events_stream_back(
    egress: Running, upstream: Upstream
) -> None:
    upstream.release.clear()
    client = await Client.to(egress.proxy)
    await client.send(
        "POST",
        "/v1/messages?beta=true",
        (("x-api-key", placeholder("ANTHROPIC_API_KEY")), ("content-type", "application/json")),
        b'{"stream": true}',
    )
    response = await client.event()
    assert isinstance(response, h11.Response) and response.status_code == 200
    first = await client.event()
    # The first event is here while the API still holds the rest: nothing is buffered.
    assert isinstance(first, h11.Data) and first.data == b"event: message_start\ndata: {}\n\n"
    upstream.release.set()
    rest = await client.event()
    assert isinstance(rest, h11.Data) and rest.data == b"event: message_stop\ndata: {}\n\n"
    assert isinstance(await client.event(), h11.EndOfMessage)

    [head] = upstream.heads
    port = upstream.url.split(":")[2].split("/")[0]
    assert head[0] == "POST /gateway/v1/messages?beta=true HTTP/1.1"  # under the API's own path
    assert f"host: 127.0.0.1:{port}" in head and "x-api-key: sk-real-1" in head
    assert not any(placeholder("ANTHROPIC_API_KEY") in line for line in head)
    assert upstream.bodies == [b'{"stream": true}']


@pytest.mark.parametrize(
    ("variable", "sent", "arrives"),
    [
        (
            "ANTHROPIC_AUTH_TOKEN",
            ("authorization", f"Bearer {placeholder('ANTHROPIC_AUTH_TOKEN')}"),
            "authorization: Bearer tok-real",
        ),
        (
            "CLAUDE_CODE_OAUTH_TOKEN",
            ("authorization", f"Bearer {placeholder('CLAUDE_CODE_OAUTH_TOKEN')}"),
            "authorization: Bearer tok-real",
        ),
        ("ANTHROPIC_API_KEY", ("x-api-key", "sk-the-agents-own"), None),
        ("ANTHROPIC_API_KEY", ("authorization", f"Bearer {placeholder('ANTHROPIC_API_KEY')}"), None),
    ],
)
async def test_each_placeholder_becomes_its_own_credential_and_nothing_else_passes(
    egress: Running, upstream: Upstream, variable: str, sent: tuple[str, str], arrives: str | None
) -> None:
    egress.use(credentials={variable: "tok-real" if "TOKEN" in variable else "sk-real-1"})
    client = await Client.to(egress.proxy)
    await client.send("POST", "/v1/messages", (sent,))
    response, _body = await client.answer()
    assert response.status_code == 200
    [head] = upstream.heads
    credentials = [line for line in head if line.startswith(("authorization:", "x-api-key:"))]
    assert credentials == ([arrives] if arrives else [])


async def test_one_connection_carries_several_requests(egress: Running, upstream: Upstream) -> None:
    client = await Client.to(egress.proxy)
    for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/models/claude-sonnet-4-5"):
        await client.send("POST", path, body=b"{}")
        response, body = await client.answer()
        assert response.status_code == 200 and body.endswith(b"message_stop\ndata: {}\n\n")
        client.http.start_next_cycle()
    assert [head[0] for head in upstream.heads] == [
        "POST /gateway/v1/messages HTTP/1.1",
        "POST /gateway/v1/messages/count_tokens HTTP/1.1",
        "POST /gateway/v1/models/claude-sonnet-4-5 HTTP/1.1",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files",
        "/v1/messages/batches",
        "/v1/organizations/api_keys",
        "/api/oauth/usage",
        # Nothing that the API's router could read as another path.
        "/v1/messages/../files",
        "/v1/messages/%2e%2e/files",
        "/v1/models/..",
        "/v1/models/../files",
        "//v1/messages",
    ],
)
async def test_only_the_messages_api_is_forwarded_with_the_key(egress: Running, upstream: Upstream, path: str) -> None:
    client = await Client.to(egress.proxy)
    await client.send("GET", path, (("x-api-key", placeholder("ANTHROPIC_API_KEY")),))
    response, body = await client.answer()
    assert response.status_code == 403
    assert response.reason.decode() == f"Forbidden by the sandbox: {path} is not forwarded to the API"
    assert b"forwards only the Messages API" in body
    assert upstream.heads == []


async def test_an_api_that_cannot_be_reached_ends_the_connection_and_says_why(egress: Running) -> None:
    egress.use(api_url=f"http://127.0.0.1:{_closed_port()}")
    client = await Client.to(egress.proxy)
    await client.send("POST", "/v1/messages", body=b"{}")
    # No answer at all: the CLI inside sees the API unreachable, as it would without the proxy.
    assert await client.raw(b"") == b""
    assert egress.proxy.api_failure == "Connection refused"


async def test_a_host_not_allowed_is_refused_with_the_setting_to_change(egress: Running) -> None:
    client = await Client.to(egress.proxy)
    answer = await client.raw(b"CONNECT pypi.org:443 HTTP/1.1\r\nhost: pypi.org:443\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(
        b"HTTP/1.1 403 Forbidden by the sandbox: pypi.org:443 is not in CLAUDE_AGENT_ALLOWED_HOSTS\r\n"
    )
    assert body.decode() == (
        "The sandbox refused the connection to pypi.org:443: agents reach only the model API and the hosts an "
        "admin allows. An admin can allow it by adding pypi.org to CLAUDE_AGENT_ALLOWED_HOSTS (comma-separated "
        "host, host:port or *.domain) and restarting the server.\n"
    )

    client = await Client.to(egress.proxy)
    answer = await client.raw(b"GET http://pypi.org:8080/simple/ HTTP/1.1\r\nhost: pypi.org:8080\r\n\r\n")
    assert answer.startswith(
        b"HTTP/1.1 403 Forbidden by the sandbox: pypi.org:8080 is not in CLAUDE_AGENT_ALLOWED_HOSTS"
    )
    assert b"by adding pypi.org:8080 to CLAUDE_AGENT_ALLOWED_HOSTS" in answer


@pytest.mark.parametrize(
    ("allowed", "target", "says"),
    [
        ("localhost:6379", "localhost:6379", "localhost resolves to 127.0.0.1, a loopback address (the server itself)"),
        # The setting refuses the metadata address itself; unlisted, it is refused like any host.
        ("", "169.254.169.254:80", "169.254.169.254:80 is not in CLAUDE_AGENT_ALLOWED_HOSTS"),
        ("", "[fe80::1]:80", "[fe80::1]:80 is not in CLAUDE_AGENT_ALLOWED_HOSTS"),
        # An allowed name does not make its address allowed.
        ("localhost", "127.0.0.1:443", "127.0.0.1:443 is not in CLAUDE_AGENT_ALLOWED_HOSTS"),
    ],
)
async def test_loopback_and_metadata_are_never_reached_even_when_a_name_is_allowed(
    egress: Running, allowed: str, target: str, says: str
) -> None:
    egress.use(allowed=parse_allowed_hosts(allowed))
    client = await Client.to(egress.proxy)
    answer = await client.raw(f"CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden by the sandbox: ") and says.encode() in answer


async def test_an_address_of_the_server_itself_is_refused(egress: Running) -> None:
    own = _own_address()
    egress.use(allowed=parse_allowed_hosts(f"{own}:22"))
    client = await Client.to(egress.proxy)
    answer = await client.raw(f"CONNECT {own}:22 HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    assert answer.startswith(
        f"HTTP/1.1 403 Forbidden by the sandbox: {own} is an address of the server itself".encode()
    )


async def test_an_allowed_host_is_reached_through_a_tunnel_and_plain_http(egress: Running, outside_host) -> None:
    egress.use(allowed=parse_allowed_hosts(f"{outside_host.host}:{outside_host.port}"))
    client = await Client.to(egress.proxy)
    authority = f"{outside_host.host}:{outside_host.port}"
    tunnel = await client.raw(
        f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n"
        f"GET /marker.txt HTTP/1.0\r\nhost: {authority}\r\n\r\n".encode()
    )
    assert tunnel.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.0 200 OK")
    assert tunnel.endswith(f"\r\n\r\n{outside_host.marker}\n".encode())

    client = await Client.to(egress.proxy)
    await client.send("GET", f"{outside_host.url}/marker.txt", (("proxy-connection", "keep-alive"),))
    response, body = await client.answer()
    assert response.status_code == 200 and body == f"{outside_host.marker}\n".encode()


async def test_closing_the_proxy_ends_its_tunnels_and_removes_its_socket(egress: Running, outside_host) -> None:
    egress.use(allowed=parse_allowed_hosts(f"{outside_host.host}:{outside_host.port}"))
    client = await Client.to(egress.proxy)
    client.writer.write(f"CONNECT {outside_host.host}:{outside_host.port} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    async with asyncio.timeout(GUARD):
        assert (await client.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await egress.proxy.close()
    async with asyncio.timeout(GUARD):
        assert await client.reader.read() == b""
    assert not egress.proxy.socket_path.exists()


async def test_the_socket_is_private_and_may_have_a_long_path(tmp_path: Path, upstream: Upstream) -> None:
    folder = tmp_path / ("deep-" * 25) / "sandbox"
    proxy = EgressProxy(folder=folder, policy=lambda: Policy(api_url=upstream.url))
    await proxy.start()
    try:
        assert len(os.fsencode(proxy.socket_path)) > 108  # longer than a socket address may be
        assert folder.stat().st_mode & 0o777 == 0o700 and proxy.socket_path.stat().st_mode & 0o777 == 0o600
        # Reached by its folder's descriptor here (in a sandbox, by its bind mount).
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{descriptor}/egress.sock")
        finally:
            os.close(descriptor)
        client = Client(reader, writer)
        await client.send("POST", "/v1/messages", body=b"{}")
        response, _body = await client.answer()
        assert response.status_code == 200
        writer.close()
    finally:
        await proxy.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _own_address() -> str:
    import ipaddress

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))
        own: str = probe.getsockname()[0]
    if ipaddress.ip_address(own).is_loopback:
        pytest.skip("this machine has no address but loopback")
    return own


# ---------------------------------------------------------------------------------------
# An API over https, reached through the server's own proxy (a company's), as the CLI would


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key) that the server trusts (SSL_CERT_FILE)."""
    cert, key = tmp_path / "api.pem", tmp_path / "api.key"
    made = subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


@pytest.fixture
async def tls_upstream(certificate: tuple[Path, Path]) -> AsyncIterator[Upstream]:
    """The stand-in API over TLS on 127.0.0.1."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    stand_in = Upstream()
    stand_in.release.set()
    server = await asyncio.start_server(stand_in.serve, "127.0.0.1", 0, ssl=context)
    stand_in.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield stand_in
    server.close()


@dataclass
class CompanyProxy:
    """A company's https proxy on 127.0.0.1: opens the tunnels it is asked for, keeps what it was asked."""

    url: str = ""
    heads: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.heads.append(head)
        host, port = head.split()[1].rsplit(":", 1)
        far_reader, far_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, far_writer), pipe(far_reader, writer))


@pytest.fixture
async def company_proxy() -> AsyncIterator[CompanyProxy]:
    proxy = CompanyProxy()
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    proxy.url = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield proxy
    server.close()


async def test_an_https_api_is_reached_through_the_servers_own_proxy(
    egress: Running, tls_upstream: Upstream, company_proxy: CompanyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://ops:s%40fe@{company_proxy.url}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    egress.use(api_url=tls_upstream.url)
    client = await Client.to(egress.proxy)
    await client.send("POST", "/v1/messages", (("x-api-key", placeholder("ANTHROPIC_API_KEY")),), b"{}")
    response, body = await client.answer()
    assert response.status_code == 200 and body.endswith(b"message_stop\ndata: {}\n\n")
    [head] = company_proxy.heads
    authority = tls_upstream.url.removeprefix("https://")
    assert head.startswith(f"CONNECT {authority} HTTP/1.1\r\n")
    assert f"proxy-authorization: Basic {base64.b64encode(b'ops:s@fe').decode()}" in head
    assert "x-api-key: sk-real-1" in tls_upstream.heads[0]  # inside the tunnel, over TLS

    # NO_PROXY names the API: straight there.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = await Client.to(egress.proxy)
    await client.send("POST", "/v1/messages", body=b"{}")
    response, _body = await client.answer()
    assert response.status_code == 200 and len(company_proxy.heads) == 1 and len(tls_upstream.heads) == 2


async def test_an_mcp_route_gets_the_servers_secret_and_an_unknown_one_is_refused(
    egress: Running, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCS_TOKEN", "secret-9")
    egress.proxy.mcp_routes = {"t0ken": McpRoute(url=upstream.url, secret_env="DOCS_TOKEN")}
    client = await Client.to(egress.proxy)
    await client.send("POST", "/mcp/t0ken?session=1", (("authorization", "Bearer the-agents-own"),), b"{}")
    response, _ = await client.answer()
    assert response.status_code == 200
    [head] = upstream.heads
    assert head[0] == "POST /gateway?session=1 HTTP/1.1"
    assert [line for line in head if line.startswith("authorization:")] == ["authorization: Bearer secret-9"]

    refused = await Client.to(egress.proxy)
    await refused.send("POST", "/mcp/guessed", body=b"{}")
    response, body = await refused.answer()
    assert (response.status_code, response.reason) == (403, b"Forbidden by the sandbox: no such MCP server")
    assert b"only the MCP servers an admin configured" in body

    monkeypatch.delenv("DOCS_TOKEN")
    unset = await Client.to(egress.proxy)
    await unset.send("POST", "/mcp/t0ken", body=b"{}")
    response, body = await unset.answer()
    assert response.status_code == 502 and b"needs the server's variable DOCS_TOKEN" in body
    assert len(upstream.heads) == 1
